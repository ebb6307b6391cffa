"""WS-Security UsernameToken (OASIS Username Token Profile 1.0): made by the SOAP sink,
checked by the SOAP simulator.

    <wsse:Security soap:mustUnderstand="1">
      <wsse:UsernameToken>
        <wsse:Username>renkei</wsse:Username>
        <wsse:Password Type="…#PasswordDigest">Base64(SHA-1(nonce + created + password))</wsse:Password>
        <wsse:Nonce EncodingType="…#Base64Binary">16 random bytes</wsse:Nonce>
        <wsu:Created>2026-12-05T08:00:00Z</wsu:Created>
      </wsse:UsernameToken>
    </wsse:Security>

PasswordDigest (the default) never sends the password; PasswordText does, and is for TLS
only. The SHA-1 is the profile's own definition, not a choice of ours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime
from typing import Any, Literal

from lxml import etree

__all__ = ["SOAP_NS", "WSSE_NS", "WSU_NS", "PasswordType", "TokenCheck", "TokenError", "username_token"]

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
_TYPES = {"PasswordDigest": f"{_PROFILE}#PasswordDigest", "PasswordText": f"{_PROFILE}#PasswordText"}
_BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
PasswordType = Literal["PasswordDigest", "PasswordText"]


def _digest(nonce: bytes, created: str, password: str) -> str:
    sha1 = hashlib.sha1(nonce + created.encode() + password.encode(), usedforsecurity=False)  # the profile's
    return base64.b64encode(sha1.digest()).decode()


def username_token(username: str, password: str, kind: PasswordType = "PasswordDigest",
                   now: datetime | None = None) -> etree._Element:
    """A ``wsse:Security`` header element carrying a fresh UsernameToken."""
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    nonce = secrets.token_bytes(16)
    security = etree.Element(f"{{{WSSE_NS}}}Security", nsmap={"wsse": WSSE_NS, "wsu": WSU_NS})
    security.set(f"{{{SOAP_NS}}}mustUnderstand", "1")
    token = etree.SubElement(security, f"{{{WSSE_NS}}}UsernameToken")
    etree.SubElement(token, f"{{{WSSE_NS}}}Username").text = username
    secret = etree.SubElement(token, f"{{{WSSE_NS}}}Password", Type=_TYPES[kind])
    secret.text = _digest(nonce, created, password) if kind == "PasswordDigest" else password
    etree.SubElement(token, f"{{{WSSE_NS}}}Nonce", EncodingType=_BASE64).text = base64.b64encode(nonce).decode()
    etree.SubElement(token, f"{{{WSU_NS}}}Created").text = created
    return security


class TokenError(Exception):
    """The UsernameToken is missing, malformed, stale, replayed or wrong (says which, no secret)."""


class TokenCheck:
    """Checks UsernameTokens against one user: the password, `Created` within `window`
    seconds of now, and each nonce used once within the window."""

    def __init__(self, username: str, password: str, *, window: float = 300.0) -> None:
        self.username = username
        self.password = password
        self.window = window
        self._nonces: dict[str, float] = {}

    def check(self, header: Any) -> None:
        token = header.find(f"{{{WSSE_NS}}}Security/{{{WSSE_NS}}}UsernameToken") if header is not None else None
        if token is None:
            raise TokenError("no wsse:Security/wsse:UsernameToken in the SOAP header")
        user = token.findtext(f"{{{WSSE_NS}}}Username")
        secret = token.find(f"{{{WSSE_NS}}}Password")
        nonce_text = token.findtext(f"{{{WSSE_NS}}}Nonce") or ""
        created = token.findtext(f"{{{WSU_NS}}}Created") or ""
        if user is None or secret is None or secret.text is None:
            raise TokenError("the UsernameToken needs a Username and a Password")
        if not hmac.compare_digest(user, self.username):
            raise TokenError("unknown user")
        kind = secret.get("Type", _TYPES["PasswordText"])
        if kind == _TYPES["PasswordDigest"]:
            self._fresh(nonce_text, created)
            expected = _digest(base64.b64decode(nonce_text), created, self.password)
        elif kind == _TYPES["PasswordText"]:
            expected = self.password
        else:
            raise TokenError("unknown password type")
        if not hmac.compare_digest(secret.text.strip(), expected):
            raise TokenError("wrong password")

    def _fresh(self, nonce: str, created: str) -> None:
        try:
            at = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
            raw = base64.b64decode(nonce, validate=True)
        except ValueError:
            raise TokenError("Created or Nonce malformed") from None
        now = time.time()
        if not raw or abs(now - at) > self.window:
            raise TokenError("the token is stale (Created too far from now) or has no nonce")
        self._nonces = {n: t for n, t in self._nonces.items() if now - t <= self.window}
        if nonce in self._nonces:
            raise TokenError("the nonce was used before (a replay)")
        self._nonces[nonce] = now
