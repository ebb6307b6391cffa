"""The console: a Starlette app, its monitor, and the server it runs on.

    console = Console(settings, console_options(settings), serve=EmbeddedServer)
    await console.start()          # serves on [console] host:port; console.url
    ...
    await console.stop()

`renkei run` starts one when `[console] enabled = true` (bus.cli.console.start_with_bus), `renkei console`
runs one alone beside a bus, `renkei demo --console` runs one on the demo's bus. Pages are
rendered on the server (Jinja2, autoescaped) and work without JavaScript; everything they
need is served from here (no CDN). Besides the pages: `/metrics` (Prometheus), `/healthz`
(the process lives) and `/readyz` (broker and stores reachable, the audit chain strictly
verified) — bus.console.probes, the same as a bus process without the console serves.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bus.brokers.base import Broker
from bus.console import pages
from bus.console.accounts import Account, Accounts
from bus.console.alerts import Alerts, webhook_sender
from bus.console.config import ConsoleOptions
from bus.console.data import BusData
from bus.console.i18n import LANGUAGES, t
from bus.console.monitor import Monitor
from bus.console.oidc import Oidc, oidc_options
from bus.console.oidc_pages import login_callback, login_start
from bus.console.parts import LANG_COOKIE, SESSION_COOKIE, DemoControls, Job, ServerFactory, language
from bus.console.probes import Probes
from bus.console.sessions import LoginThrottle, Session, Sessions
from bus.settings import Settings

__all__ = ["Console", "DemoControls", "Job"]  # the last two: from bus.console.parts

HERE = Path(__file__).parent


class Console:
    def __init__(self, settings: Settings, options: ConsoleOptions, *, serve: ServerFactory,
                 broker: Broker | None = None,
                 destinations: Callable[[], Any] = tuple, demo: DemoControls | None = None,
                 send: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self.options = options
        self.data = BusData(settings, broker=broker, destinations=destinations)
        assert options.users_file is not None  # console_options fills it in
        self.accounts = Accounts(options.users_file)
        if send is None and options.webhook_url:
            send = webhook_sender(options.webhook_url)
        self.alerts = Alerts(send, quiet_period=options.quiet_period, per_hour=options.alerts_per_hour)
        self.monitor = Monitor(self.data, options, self.alerts)
        self.sessions = Sessions()
        self.throttle = LoginThrottle(limit=options.login_failures, window=options.lockout)
        self.jobs: dict[str, Job] = {}
        self.demo = demo
        oidc = oidc_options(settings)  # [console.oidc]: log in with an OpenID Connect provider too
        self.oidc = Oidc(oidc) if oidc is not None else None
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(("html",)), trim_blocks=True, lstrip_blocks=True)
        self.app = _build_app(self)
        self.server = serve(self.app, host=options.host, port=options.port)

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        await self.monitor.start()
        try:
            await self.server.start()
        except BaseException:
            await self.monitor.stop()
            raise

    async def stop(self) -> None:
        await self.server.stop()
        for job in self.jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()
        await self.monitor.stop()
        if self.oidc is not None:
            await self.oidc.aclose()

    # -- what every page needs ---------------------------------------------------------------

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(SESSION_COOKIE))

    def account(self, request: Request) -> Account | None:
        session = self.session(request)
        if session is None or session.account is None:
            return None
        if session.external is not None:
            return session.external
        account = self.accounts.get(session.account)
        if account is None:
            self.sessions.end(session.token)
        return account

    def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        lang = language(request)
        session = self.session(request)
        csrf = context.pop("csrf_override", None) or (session.csrf if session else "")
        account = context.pop("account", None) or self.account(request)
        page = self.templates.get_template(template).render(
            lang=lang, other_lang="en" if lang == "ja" else "ja", t=lambda key, **v: t(lang, key, **v),
            account=account, csrf=csrf, path=request.url.path,
            demo=self.demo is not None, oidc=self.oidc is not None, scope_text=_scope_text(lang, account), **context)
        response = HTMLResponse(page, status_code=status_code)
        response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; "
                                                       "style-src 'self'; frame-ancestors 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    def set_session_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="strict",
                            secure=self.options.secure_cookies, path="/")

    def new_job(self, what: str, total: int, owner: str) -> Job:
        job = Job(secrets.token_urlsafe(12), what, total, owner)
        self.jobs[job.id] = job
        while len(self.jobs) > 100:
            oldest = next(iter(self.jobs))
            if not self.jobs[oldest].finished:
                break
            del self.jobs[oldest]
        return job


def _scope_text(lang: str, account: Account | None) -> str:
    if account is None:
        return ""
    return t(lang, "scope.all") if account.scope is None else "・".join(sorted(account.scope))


def _build_app(console: Console) -> Starlette:
    def bind(handler: Callable[[Console, Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            response = await handler(console, request)
            lang = request.query_params.get("lang")
            if lang in LANGUAGES:
                response.set_cookie(LANG_COOKIE, lang, samesite="strict", path="/", max_age=365 * 86400)
            return response
        return endpoint

    routes = [
        Route("/", bind(pages.overview)),
        Route("/login", bind(pages.login_page), methods=["GET"]),
        Route("/login", bind(pages.login), methods=["POST"]),
        Route("/logout", bind(pages.logout), methods=["POST"]),
        Route("/login/oidc", bind(login_start)),
        Route("/login/oidc/callback", bind(login_callback)),
        Route("/dead", bind(pages.dead_list)),
        Route("/dead/{dead_id:int}", bind(pages.dead_show), methods=["GET", "POST"]),
        Route("/dead/resolve", bind(pages.dead_resolve), methods=["POST"]),
        Route("/jobs/{job_id}", bind(pages.job_page)),
        Route("/search", bind(pages.search), methods=["GET"]),
        Route("/search", bind(pages.search_resident), methods=["POST"]),
        Route("/audit", bind(pages.audit_page)),
        Route("/audit/verify", bind(pages.audit_verify), methods=["POST"]),
        Route("/audit/export", bind(pages.audit_export), methods=["POST"]),
        Route("/alerts", bind(pages.alerts_page)),
        Route("/demo/{system}/{action}", bind(pages.demo_action), methods=["POST"]),
        *Probes(console.monitor).routes(),  # /metrics, /healthz, /readyz: as every bus process serves them
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes)

