"""An ASGI app served by uvicorn inside the running event loop: the HTTP intake and the
simulators both run on it (in `renkei run`, the demo and the tests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from bus.errors import ConfigError

__all__ = ["EmbeddedServer"]


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmbeddedServer:
    """One ASGI app served by uvicorn on a loopback socket inside the running loop.

    `port=0` picks a free port; after `start()`, `port` and `url` are known, and a
    `stop()` + `start()` listens on the same port again. `tls` = (certificate file, key file)
    serves https only (the HTTP intake's `[intake] tls_cert_file`/`tls_key_file`).
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0,
                 tls: tuple[str, str] | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.tls = tls
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
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=1,
            ssl_certfile=self.tls[0] if self.tls else None, ssl_keyfile=self.tls[1] if self.tls else None,
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
