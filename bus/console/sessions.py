"""Sessions, CSRF tokens and the login throttle of the console (server-side, in memory).

- A session is a random token in an HttpOnly, SameSite=Strict cookie; what it holds (the
  account, its CSRF token) stays in the process. It ends at logout, after `idle` seconds
  without a request, or when the account is removed.
- Every POST carries the session's CSRF token in a hidden field; a POST without the right
  one is refused (403). The login form has one too (a session before login).
- Login failures are counted per account name and per client address; `limit` failures
  within `window` seconds lock further tries of that name or address until the window passes.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bus.console.accounts import Account

__all__ = ["LoginThrottle", "Session", "Sessions"]


@dataclass(slots=True)
class Session:
    token: str
    csrf: str
    account: str | None = None
    seen: float = field(default_factory=time.time)
    external: Account | None = None  # an account from an OIDC provider (bus.console.oidc), not the users file

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(self.csrf, given)


class Sessions:
    def __init__(self, *, idle: float = 1800.0, limit: int = 10_000) -> None:
        self.idle = idle
        self.limit = limit
        self._by_token: dict[str, Session] = {}

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._by_token.get(token)
        now = time.time()
        if session is None or now - session.seen > self.idle:
            self._by_token.pop(token or "", None)
            return None
        session.seen = now
        return session

    def new(self) -> Session:
        if len(self._by_token) >= self.limit:
            self._expire()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        self._by_token[session.token] = session
        return session

    def login(self, session: Session, account: str, external: Account | None = None) -> Session:
        """A fresh session for `account` (the anonymous one's token is dropped: no fixation);
        `external`: the account itself, when it is not in the users file (OIDC)."""
        self._by_token.pop(session.token, None)
        fresh = self.new()
        fresh.account, fresh.external = account, external
        return fresh

    def end(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)

    def _expire(self) -> None:
        now = time.time()
        for token, s in list(self._by_token.items()):
            if now - s.seen > self.idle or s.account is None:
                del self._by_token[token]


class LoginThrottle:
    def __init__(self, *, limit: int = 5, window: float = 900.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def locked(self, *keys: str) -> bool:
        now = time.time()
        return any(len(self._recent(k, now)) >= self.limit for k in keys)

    def failed(self, *keys: str) -> None:
        now = time.time()
        for k in keys:
            self._recent(k, now).append(now)

    def succeeded(self, name_key: str) -> None:
        self._failures.pop(name_key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] < now - self.window:
            times.popleft()
        return times
