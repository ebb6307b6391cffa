"""What the console's pages and its app share: the cookies, a redirect, the language, a job of
many letters, the demo's controls, and the console as the pages see it (`ConsoleLike`), so
bus.console.pages needs nothing of bus.console.web (which builds the app from the pages)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bus.console.accounts import Account, Accounts
from bus.console.alerts import Alerts
from bus.console.config import ConsoleOptions
from bus.console.data import BusData
from bus.console.i18n import LANGUAGES
from bus.console.monitor import Monitor
from bus.console.sessions import LoginThrottle, Session, Sessions

if TYPE_CHECKING:
    from bus.console.oidc import Oidc

__all__ = ["LANG_COOKIE", "SESSION_COOKIE", "ConsoleLike", "DemoControls", "Job", "ServerFactory", "ServerLike",
           "language", "redirect"]

SESSION_COOKIE = "renkei_session"
LANG_COOKIE = "renkei_lang"


class ServerLike(Protocol):
    """The HTTP server the console runs on, made by the assembly (adapters.server.EmbeddedServer):
    the console itself knows no adapter."""

    @property
    def url(self) -> str: ...
    @property
    def running(self) -> bool: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


ServerFactory = Callable[..., ServerLike]  # (app, *, host, port) → a server


class DemoControls(Protocol):
    """What `renkei demo --console` lets an operator do from the console."""

    def systems(self) -> dict[str, bool]: ...  # system → running
    async def take_down(self, system: str) -> None: ...
    async def bring_up(self, system: str) -> None: ...
    async def send(self, changes: int) -> None: ...


@dataclass(slots=True)
class Job:
    """A replay or discard of many letters, running while its page shows the progress."""

    id: str
    what: str  # replay | discard
    total: int
    owner: str
    done: int = 0
    finished: bool = False
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ConsoleLike(Protocol):
    options: ConsoleOptions
    data: BusData
    accounts: Accounts
    alerts: Alerts
    monitor: Monitor
    sessions: Sessions
    throttle: LoginThrottle
    jobs: dict[str, Job]
    demo: DemoControls | None
    oidc: Oidc | None

    def session(self, request: Request) -> Session | None: ...
    def account(self, request: Request) -> Account | None: ...
    def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse: ...
    def set_session_cookie(self, response: Response, session: Session) -> None: ...
    def new_job(self, what: str, total: int, owner: str) -> Job: ...


def language(request: Request) -> str:
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    return asked if asked in LANGUAGES else "ja"


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
