"""Log in to the console with an OpenID Connect provider (optional): `[console.oidc]`.

```toml
[console.oidc]
issuer = "https://idp.example.lg.jp/realms/renkei"   # its /.well-known/openid-configuration is read
client_id = "renkei-console"
client_secret_env = "RENKEI_CONSOLE_OIDC_CLIENT_SECRET"   # the secret comes from this variable, never the file
redirect_url = "https://console.example/login/oidc/callback"   # default: this console's own address
role_claim = "renkei_role"                      # viewer | operator | auditor
municipalities_claim = "renkei_municipalities"  # a list of 地方公共団体コード, or "*"
name_claim = "preferred_username"
```

The authorization-code flow with PKCE (S256): `/login/oidc` sends the browser to the provider
with a random `state` and `nonce`; the provider sends it back to `/login/oidc/callback` with a
code, exchanged (with the client secret) at the provider's token endpoint for an ID token,
whose signature (the provider's JWKS), issuer, audience, expiry and nonce are checked by
joserfc (the JOSE library of the Authlib project, well kept and typed: the part where a
hand-written check would be dangerous; the two HTTP calls of the flow are plain httpx). The account is the ID token's
name claim (`oidc:<name>`), its role and municipalities the two claims above: a token without
a valid role or municipality is refused. The flow is bound to the browser that began it by a
short-lived cookie (SameSite=Lax: the provider's redirect back is cross-site), so a code
cannot be slipped into someone else's browser. Every refusal is audited (`auth_failed`),
never with a token or a claim's value other than the account name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
import tomllib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from bus.console.accounts import ALL, ROLES, Account
from bus.errors import ConfigError
from bus.settings import Settings

__all__ = ["FLOW_COOKIE", "FLOW_SECONDS", "Oidc", "OidcOptions", "OidcRefused", "oidc_options"]

FLOW_COOKIE = "renkei_oidc"
_MUNICIPALITY = re.compile(r"\d{6}")
_NAME = re.compile(r"[^A-Za-z0-9._@-]")
FLOW_SECONDS = 600


class OidcRefused(Exception):
    """A login the provider's answer does not allow (the message says why, without secrets)."""


@dataclass(frozen=True, slots=True)
class OidcOptions:
    issuer: str
    client_id: str
    client_secret: str
    redirect_url: str | None = None
    role_claim: str = "renkei_role"
    municipalities_claim: str = "renkei_municipalities"
    name_claim: str = "preferred_username"
    scope: str = "openid profile"


def oidc_options(settings: Settings, env: dict[str, str] | None = None) -> OidcOptions | None:
    """The `[console.oidc]` table of `settings`' file; None when there is none."""
    if settings.source_file is None:
        return None
    where = f"{settings.source_file} [console.oidc]"
    table = tomllib.loads(settings.source_file.read_text(encoding="utf-8")).get("console", {}).get("oidc")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError("[console.oidc] must be a table", where=where)
    env = dict(os.environ if env is None else env)
    known = {"issuer", "client_id", "client_secret_env", "redirect_url", "role_claim", "municipalities_claim",
             "name_claim", "scope"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"unknown [console.oidc] setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                          where=where)
    for key in ("issuer", "client_id"):
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise ConfigError(f"[console.oidc] {key} is required (a string)", where=where)
    secret_env = str(table.get("client_secret_env", "RENKEI_CONSOLE_OIDC_CLIENT_SECRET"))
    secret = env.get(secret_env, "")
    if not secret:
        raise ConfigError(f"[console.oidc]: the client secret is read from the environment variable {secret_env}, "
                          "which is not set", where=where)
    rest = {k: str(v) for k, v in table.items() if k not in ("issuer", "client_id", "client_secret_env")}
    return OidcOptions(table["issuer"].rstrip("/"), table["client_id"], secret, **rest)


@dataclass(slots=True)
class _Flow:
    binding: str  # the value of the browser's flow cookie
    nonce: str
    verifier: str  # PKCE
    redirect_url: str
    started: float


class Oidc:
    """The console's side of the flow; `client` talks to the provider (tests pass their own)."""

    def __init__(self, options: OidcOptions, client: httpx.AsyncClient | None = None) -> None:
        self.options = options
        self._client = client
        self._metadata: dict[str, Any] | None = None
        self._flows: dict[str, _Flow] = {}  # state → the flow it began

    async def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            url = f"{self.options.issuer}/.well-known/openid-configuration"
            answer = await (await self._http()).get(url)
            answer.raise_for_status()
            data = answer.json()
            if data.get("issuer", "").rstrip("/") != self.options.issuer:
                raise OidcRefused("the provider's discovery document names another issuer")
            self._metadata = data
        return self._metadata

    async def begin(self, redirect_url: str) -> tuple[str, str]:
        """(the provider's authorization URL to send the browser to, the flow cookie's value)."""
        meta = await self.metadata()
        now = time.time()
        for state in [s for s, f in self._flows.items() if now - f.started > FLOW_SECONDS]:
            del self._flows[state]
        state, flow = secrets.token_urlsafe(24), _Flow(secrets.token_urlsafe(24), secrets.token_urlsafe(24),
                                                       secrets.token_urlsafe(48), redirect_url, now)
        self._flows[state] = flow
        challenge = base64.urlsafe_b64encode(hashlib.sha256(flow.verifier.encode()).digest()).rstrip(b"=").decode()
        endpoint = str(meta["authorization_endpoint"])
        url = endpoint + ("&" if "?" in endpoint else "?") + urlencode({
            "response_type": "code", "client_id": self.options.client_id, "redirect_uri": redirect_url,
            "scope": self.options.scope, "state": state, "nonce": flow.nonce, "code_challenge": challenge,
            "code_challenge_method": "S256"})  # RFC 7636 S256
        return url, flow.binding

    async def finish(self, state: str, code: str, binding: str | None) -> Account:
        """The account of a provider's answer (`state`, `code`) in the browser with flow cookie
        `binding`; raises OidcRefused saying why."""
        flow = self._flows.pop(state, None)
        if flow is None or time.time() - flow.started > FLOW_SECONDS:
            raise OidcRefused("unknown or expired login (state)")
        if binding is None or not hmac.compare_digest(binding, flow.binding):
            raise OidcRefused("the login was begun in another browser")
        meta = await self.metadata()
        client = await self._http()
        answer = await client.post(meta["token_endpoint"], data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": flow.redirect_url,
            "code_verifier": flow.verifier}, auth=(self.options.client_id, self.options.client_secret))
        if answer.status_code != 200:
            raise OidcRefused(f"the provider refused the code (HTTP {answer.status_code})")
        id_token = answer.json().get("id_token")
        if not isinstance(id_token, str):
            raise OidcRefused("the provider's answer has no ID token")
        keys = (await client.get(meta["jwks_uri"])).json()
        try:
            token = jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=["RS256", "ES256", "PS256"])
            jwt.JWTClaimsRegistry(iss={"essential": True, "value": self.options.issuer},
                                  aud={"essential": True, "value": self.options.client_id},
                                  nonce={"essential": True, "value": flow.nonce},
                                  exp={"essential": True}).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise OidcRefused(f"the ID token does not verify ({type(exc).__name__})") from None
        return self._account(token.claims)

    def _account(self, claims: dict[str, Any]) -> Account:
        o = self.options
        name = claims.get(o.name_claim) or claims.get("sub")
        if not isinstance(name, str) or not name:
            raise OidcRefused(f"the ID token has no {o.name_claim} or sub")
        role = claims.get(o.role_claim)
        if role not in ROLES:
            raise OidcRefused(f"the ID token's {o.role_claim} is not one of {', '.join(ROLES)}")
        where = claims.get(o.municipalities_claim)
        codes = [where] if isinstance(where, str) else where
        if not isinstance(codes, list) or not codes or not all(
                isinstance(c, str) and (c == ALL or _MUNICIPALITY.fullmatch(c)) for c in codes):
            raise OidcRefused(f"the ID token's {o.municipalities_claim} is not a list of municipality codes or '*'")
        return Account(f"oidc:{_NAME.sub('_', name)[:64]}", str(role), tuple(sorted(set(codes))))
