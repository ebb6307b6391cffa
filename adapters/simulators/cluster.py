"""Run simulators in-process: one uvicorn server per system on a loopback port, all in the
current asyncio loop (for tests, the demo and benchmarks).

::

    async with SimulatorCluster(catalog=catalog) as sims:
        sink = HttpSink(sims.messages_url("zei"))
        ...
        assert sims.state("zei").effects == 1
        sims.state("zei").control(mode="fail", fail_status=503, count=2)
        await sims.take_down("kokuho")    # connection refused from now on
        await sims.bring_up("kokuho")     # same port again

Each system has its own server and port (not path prefixes), so taking one down refuses
connections to it alone, as when one vendor's machine goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import uvicorn

from adapters.simulators.app import Validate, create_app
from adapters.simulators.state import SYSTEMS, SimulatorState
from bus.errors import ConfigError

__all__ = ["EmbeddedServer", "SimulatorCluster"]


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


class SimulatorCluster:
    """The simulators of several receiving systems, each on its own loopback port."""

    def __init__(
        self,
        systems: Iterable[str] = tuple(SYSTEMS),
        *,
        catalog: Any = None,
        validate: Validate | None = None,
        host: str = "127.0.0.1",
        store: str | None = None,
    ) -> None:
        names = list(systems)
        unknown = [s for s in names if s not in SYSTEMS]
        if unknown:
            raise ConfigError(f"no simulator for {unknown}; known: {', '.join(SYSTEMS)}")
        self.states: dict[str, SimulatorState] = {}
        self.servers: dict[str, EmbeddedServer] = {}
        for name in names:
            state = SimulatorState(name, store=f"{store}/{name}" if store else None)
            app = create_app(name, catalog=catalog, validate=validate, state=state)
            self.states[name] = state
            self.servers[name] = EmbeddedServer(app, host=host)

    async def start(self) -> SimulatorCluster:
        try:
            await asyncio.gather(*(server.start() for server in self.servers.values()))
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.servers.values()))

    async def __aenter__(self) -> SimulatorCluster:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def urls(self) -> dict[str, str]:
        """system → base URL (``http://127.0.0.1:PORT``)."""
        return {name: server.url for name, server in self.servers.items()}

    def url(self, system: str) -> str:
        return self._server(system).url

    def messages_url(self, system: str) -> str:
        """Where a sink posts: ``<base>/messages``."""
        return f"{self.url(system)}/messages"

    def state(self, system: str) -> SimulatorState:
        if system not in self.states:
            raise ConfigError(f"this cluster does not run {system!r}; it runs {', '.join(self.states)}")
        return self.states[system]

    async def take_down(self, system: str) -> None:
        """The system goes away: its port refuses connections until `bring_up`."""
        await self._server(system).stop()

    async def bring_up(self, system: str) -> None:
        await self._server(system).start()

    def reset(self) -> None:
        """Forget all held messages and counters, and return every simulator to ok."""
        for state in self.states.values():
            state.reset()

    def _server(self, system: str) -> EmbeddedServer:
        if system not in self.servers:
            raise ConfigError(f"this cluster does not run {system!r}; it runs {', '.join(self.servers)}")
        return self.servers[system]
