"""An ASGI app served by uvicorn inside the running event loop: the HTTP intake and the
simulators both run on it (in `renkei run`, the demo and the tests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import structlog
import uvicorn
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from bus.errors import ConfigError

__all__ = ["EmbeddedServer", "QuietDisconnects"]

log = structlog.get_logger("renkei.http")


class QuietDisconnects:
    """ASGI wrapper: a client that hangs up before its body arrived (a killed deliverer, a
    client that gave up) is one log line, not uvicorn's "Exception in ASGI application" with a
    traceback. There is nobody left to answer; nothing of the body was taken."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            client = scope.get("client") or (None,)
            log.info("http.client_disconnected", path=scope.get("path"), peer=client[0])


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head does not arrive within
    `header_timeout` seconds (uvicorn itself waits for ever: one byte a second holds a
    connection). Armed when the connection opens and after each response (keep-alive), disarmed
    when a request's head is complete; the app's own timeout covers the body."""

    header_timeout = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's head arrived
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


class EmbeddedServer:
    """One ASGI app served by uvicorn on a loopback socket inside the running loop.

    `port=0` picks a free port; after `start()`, `port` and `url` are known, and a
    `stop()` + `start()` listens on the same port again. `tls` = (certificate file, key file)
    serves https only (the HTTP intake's `[intake] tls_cert_file`/`tls_key_file`).
    `header_timeout` closes a connection whose request head is slower than that (h11 then);
    `max_connections` answers 503 beyond that many connections (uvicorn's limit_concurrency).
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0,
                 tls: tuple[str, str] | None = None, header_timeout: float | None = None,
                 max_connections: int | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.tls = tls
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self.running:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            QuietDisconnects(self.app), lifespan="off", log_level="warning", access_log=False,
            timeout_graceful_shutdown=1,
            ssl_certfile=self.tls[0] if self.tls else None, ssl_keyfile=self.tls[1] if self.tls else None,
            limit_concurrency=self.max_connections,
            http=type("HeaderTimeoutH11", (_HeaderTimeoutH11,), {"header_timeout": self.header_timeout})
            if self.header_timeout else "auto",
        )
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn:{self.port}")
        while not server.started:
            if task.done():
                sock.close()
                task.result()  # raises what made it fail
                raise ConfigError(f"server on {self.url} stopped while starting")
            await asyncio.sleep(0.005)
        self._server, self._task = server, task

    async def stop(self) -> None:
        """Stop listening and close open connections (clients get connection errors)."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        self._server.force_exit = True  # do not wait for keep-alive clients to leave
        await self._task
        self._server = self._task = None
