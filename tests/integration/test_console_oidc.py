"""The console's OIDC login against a tiny OpenID Connect provider served in the test (no external
service): the authorization-code flow with PKCE, the role and municipality mapped from the ID
token's claims, and every bad answer refused and audited — another client's token, a wrong
nonce, no role, a callback in another browser."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from run_support import PSEUDONYM_KEY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from adapters.server import EmbeddedServer
from bus.audit.log import AuditLog
from bus.console import Console, console_options
from bus.settings import Settings

pytestmark = pytest.mark.integration
CLIENT, SECRET = "renkei-console", "the client's secret"


@dataclass
class Provider:
    """An OpenID provider of one client: discovery, authorize (no login page: it answers at
    once for `claims`), token (client secret and PKCE checked), JWKS."""

    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    claims: dict[str, Any] = field(default_factory=dict)
    token_overrides: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    issuer: str = ""

    def app(self) -> Starlette:
        async def discovery(request: Request) -> Response:
            return JSONResponse({"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                                 "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks"})

        async def authorize(request: Request) -> Response:
            q = request.query_params
            assert q["client_id"] == CLIENT and q["response_type"] == "code" and q["code_challenge_method"] == "S256"
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"nonce": q["nonce"], "challenge": q["code_challenge"], "redirect": q["redirect_uri"]}
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 302)

        async def token(request: Request) -> Response:
            form = await request.form()
            basic = base64.b64decode(request.headers["authorization"].split()[1]).decode()
            grant = self.codes.pop(str(form["code"]), None)
            verifier = str(form["code_verifier"]).encode()
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
            if basic != f"{CLIENT}:{SECRET}" or grant is None or grant["challenge"] != challenge \
                    or form["redirect_uri"] != grant["redirect"]:
                return JSONResponse({"error": "invalid_grant"}, 400)
            now = int(time.time())
            claims = {"iss": self.issuer, "aud": CLIENT, "sub": "u-1", "iat": now, "exp": now + 300,
                      "nonce": grant["nonce"], **self.claims, **self.token_overrides}
            return JSONResponse({"id_token": jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.key),
                                 "token_type": "Bearer", "access_token": "a"})

        async def jwks(request: Request) -> Response:
            return JSONResponse(KeySet([self.key]).as_dict(private=False))

        return Starlette(routes=[Route("/.well-known/openid-configuration", discovery),
                                 Route("/authorize", authorize), Route("/token", token, methods=["POST"]),
                                 Route("/jwks", jwks)])


@dataclass
class Running:
    console: Console
    provider: Provider
    settings: Settings


@pytest.fixture
async def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    provider = Provider(claims={"preferred_username": "tanaka", "renkei_role": "operator",
                                "renkei_municipalities": ["131016"]})
    idp = EmbeddedServer(provider.app(), port=0)
    await idp.start()
    provider.issuer = idp.url
    monkeypatch.setenv("RENKEI_CONSOLE_OIDC_CLIENT_SECRET", SECRET)
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\nmunicipalities = ["131016", "271004"]\n'
                      '\n[logging]\nlevel = "warning"\n'
                      f'\n[console]\nport = 0\n\n[console.oidc]\nissuer = "{idp.url}"\nclient_id = "{CLIENT}"\n',
                      encoding="utf-8")
    settings = Settings.load(config, env={"RENKEI_PSEUDONYM_KEY": PSEUDONYM_KEY})
    console = Console(settings, console_options(settings, env={}), serve=EmbeddedServer)
    await console.start()
    try:
        yield Running(console, provider, settings)
    finally:
        await console.stop()
        await idp.stop()


async def _login(client: httpx.AsyncClient, console: Console, *, other: httpx.AsyncClient | None = None) -> Response:
    """Through the flow: the console → the provider → the console's callback (in `other`, if given)."""
    start = await client.get(f"{console.url}/login/oidc")
    assert start.status_code == 303 and urlsplit(start.headers["location"]).path == "/authorize"
    back = await client.get(start.headers["location"])
    assert back.status_code == 302
    return await (other or client).get(back.headers["location"])  # type: ignore[return-value]


def _refusals(settings: Settings) -> list[str]:
    with AuditLog.open(settings) as log:
        return [str(r.event.reason) for r in log.store.records() if r.event.event == "auth_failed"
                and r.event.actor == "console:oidc"]


async def test_an_oidc_login_takes_role_and_municipality_from_the_id_token(running: Running) -> None:
    async with httpx.AsyncClient() as client:
        page = await client.get(f"{running.console.url}/login")
        assert 'href="/login/oidc"' in page.text
        done = await _login(client, running.console)
        assert done.status_code == 303 and done.headers["location"] == "/"
        overview = await client.get(f"{running.console.url}/")
    assert overview.status_code == 200 and "oidc:tanaka" in overview.text and "131016" in overview.text
    session = running.console.sessions.get(client.cookies.get("renkei_session"))
    assert session is not None and session.external is not None
    assert (session.external.role, session.external.municipalities) == ("operator", ("131016",))
    assert _refusals(running.settings) == []


@pytest.mark.parametrize(("token", "refused"), [
    ({"aud": "another-client"}, "does not verify"),
    ({"nonce": "replayed"}, "does not verify"),
    ({"iss": "https://impostor.example"}, "does not verify"),
    ({"exp": int(time.time()) - 60}, "does not verify"),
    ({"renkei_role": "admin"}, "renkei_role is not one of"),
    ({"renkei_municipalities": ["13101"]}, "renkei_municipalities is not a list"),
])
async def test_a_bad_id_token_is_refused_and_audited(running: Running, token: dict[str, Any], refused: str) -> None:
    running.provider.token_overrides = token
    async with httpx.AsyncClient() as client:
        done = await _login(client, running.console)
        after = await client.get(f"{running.console.url}/", follow_redirects=False)
    assert done.status_code == 401 and "組織のアカウントでログインできませんでした" in done.text
    assert after.status_code == 303 and after.headers["location"] == "/login"  # no session
    reasons = _refusals(running.settings)
    assert len(reasons) == 1 and refused in reasons[0]


async def test_a_callback_in_another_browser_is_refused(running: Running) -> None:
    async with httpx.AsyncClient() as victim, httpx.AsyncClient() as attacker:
        done = await _login(attacker, running.console, other=victim)
    assert done.status_code == 401
    assert "another browser" in _refusals(running.settings)[0]


async def test_a_replayed_callback_is_refused(running: Running) -> None:
    async with httpx.AsyncClient() as client:
        start = await client.get(f"{running.console.url}/login/oidc")
        back = await client.get(start.headers["location"])
        assert (await client.get(back.headers["location"])).status_code == 303
        again = await client.get(back.headers["location"])
    assert again.status_code == 401 and "unknown or expired" in _refusals(running.settings)[0]
    assert parse_qs(urlsplit(back.headers["location"]).query)["state"]
