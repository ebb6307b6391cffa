"""An ASGI app served by uvicorn inside the running event loop: the HTTP intake and the
simulators both run on it (in `renkei run`, the demo and the tests).

The request parser is httptools (llhttp, in C; a dependency of renkei). uvicorn's h11 protocol
parses in pure Python: with it `renkei run` at 1,000 changes/s offered spent 2.32 / 2.64 ms of
the bus's CPU a change against 2.09 / 2.36 with httptools, and accepted 345 / 303 against
367 / 330 a second (bench/README.md, stop 27). `RENKEI_HTTP_PARSER=h11` (or `parser="h11"`)
keeps h11, the tested fallback; the hostile-client suite runs on both. Either way a request head
slower than `header_timeout` closes the connection (uvicorn alone waits for ever).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

import structlog
import uvicorn
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bus.errors import ConfigError

__all__ = ["PARSERS", "EmbeddedServer", "QuietDisconnects", "parser_of"]

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


#: the request parsers a server can use, the default first
PARSERS = ("httptools", "h11")


def parser_of(chosen: str | None = None, env: dict[str, str] | None = None) -> str:
    """The parser to use: `chosen`, else RENKEI_HTTP_PARSER, else httptools; ConfigError for a
    name that is not one of PARSERS."""
    name = (chosen or (os.environ if env is None else env).get("RENKEI_HTTP_PARSER", "")).strip().lower()
    if not name:
        return PARSERS[0]
    if name not in PARSERS:
        raise ConfigError(f"RENKEI_HTTP_PARSER must be one of {', '.join(PARSERS)}, got {name!r}")
    return name


class _HeadTimer:
    """Closes a connection whose request head does not arrive within `header_timeout` seconds
    (uvicorn itself waits for ever: one byte a second holds a connection). Armed when the
    connection opens and after each response (keep-alive), disarmed when a request's head is
    complete; the app's own timeout covers the body. Mixed into each parser's protocol."""

    header_timeout = 10.0
    _header_timer: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

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


class _HeaderTimeoutH11(_HeadTimer, H11Protocol):
    """uvicorn's h11 protocol with the head timer."""

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


class _HeaderTimeoutHttpTools(_HeadTimer, HttpToolsProtocol):
    """uvicorn's httptools protocol with the head timer: disarmed when llhttp has read a
    request's whole head (`on_headers_complete`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


_TIMED: dict[str, type[_HeadTimer]] = {"h11": _HeaderTimeoutH11, "httptools": _HeaderTimeoutHttpTools}


def _header_timeout_protocol(parser: str, header_timeout: float) -> type:
    """The protocol class of `parser` with the head timer set to `header_timeout`."""
    base = _TIMED[parser]
    return type(base.__name__.lstrip("_"), (base,), {"header_timeout": header_timeout})


class EmbeddedServer:
    """One ASGI app served by uvicorn on a loopback socket inside the running loop.

    `port=0` picks a free port; after `start()`, `port` and `url` are known, and a
    `stop()` + `start()` listens on the same port again. `tls` = (certificate file, key file)
    serves https only (the HTTP intake's `[intake] tls_cert_file`/`tls_key_file`).
    `header_timeout` closes a connection whose request head is slower than that;
    `max_connections` answers 503 beyond that many connections (uvicorn's limit_concurrency);
    `parser` is one of PARSERS (left out: `parser_of()`).
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0,
                 tls: tuple[str, str] | None = None, header_timeout: float | None = None,
                 max_connections: int | None = None, parser: str | None = None) -> None:
        self.app = app
        self.parser = parser_of(parser)
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
            http=_header_timeout_protocol(self.parser, self.header_timeout) if self.header_timeout else self.parser,
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
