"""The console's two OIDC pages, `/login/oidc` and `/login/oidc/callback` (bound by bus.console.web;
the flow itself is bus.console.oidc)."""

from __future__ import annotations

import asyncio

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bus.audit.events import EventType
from bus.console.oidc import FLOW_COOKIE, FLOW_SECONDS, OidcRefused
from bus.console.parts import ConsoleLike, redirect

__all__ = ["login_callback", "login_start"]


async def login_start(console: ConsoleLike, request: Request) -> Response:
    """GET /login/oidc: to the provider, with a fresh flow bound to this browser."""
    if console.oidc is None:
        return console.render(request, "message.html", status_code=404, text="error.not_found")
    redirect_url = console.oidc.options.redirect_url or f"{request.base_url}login/oidc/callback"
    try:
        url, binding = await console.oidc.begin(redirect_url)
    except (httpx.HTTPError, ValueError, KeyError, OidcRefused) as exc:
        return await _refused(console, request, f"the provider cannot be reached ({type(exc).__name__})")
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(FLOW_COOKIE, binding, httponly=True, samesite="lax", secure=console.options.secure_cookies,
                        max_age=FLOW_SECONDS, path="/login/oidc")
    return response


async def login_callback(console: ConsoleLike, request: Request) -> Response:
    """GET /login/oidc/callback?state=…&code=…: the provider's answer, checked; a session on success."""
    if console.oidc is None:
        return console.render(request, "message.html", status_code=404, text="error.not_found")
    state, code = request.query_params.get("state", ""), request.query_params.get("code", "")
    if not state or not code:
        error = request.query_params.get("error", "no code")
        return await _refused(console, request, f"the provider answered without a code ({error[:64]})")
    try:
        account = await console.oidc.finish(state, code, request.cookies.get(FLOW_COOKIE))
    except OidcRefused as exc:
        return await _refused(console, request, str(exc))
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return await _refused(console, request, f"the provider cannot be reached ({type(exc).__name__})")
    session = console.session(request) or console.sessions.new()
    fresh = console.sessions.login(session, account.name, external=account)
    response = redirect("/")
    console.set_session_cookie(response, fresh)
    response.delete_cookie(FLOW_COOKIE, path="/login/oidc")
    return response


async def _refused(console: ConsoleLike, request: Request, reason: str) -> Response:
    await asyncio.to_thread(console.data.record_console_event, EventType.AUTH_FAILED, actor="console:oidc",
                            reason=f"console OIDC login refused: {reason}")
    session = console.session(request) or console.sessions.new()
    response = console.render(request, "login.html", status_code=401, error="login.oidc_failed",
                              csrf_override=session.csrf)
    console.set_session_cookie(response, session)
    return response
