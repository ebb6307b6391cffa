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
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from adapters.server import EmbeddedServer
from adapters.simulators.app import Validate, create_app
from adapters.simulators.state import SYSTEMS, SimulatorState, wire_togo
from bus.errors import ConfigError

__all__ = ["EmbeddedServer", "SimulatorCluster"]


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
        ports: Mapping[str, int] | None = None,
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
            self.servers[name] = EmbeddedServer(app, host=host, port=(ports or {}).get(name, 0))
        wire_togo(self.states)  # the 統合宛名 function feeds the 中間サーバー and the portal

    async def start(self) -> SimulatorCluster:
        try:
            await asyncio.gather(*(self._start(name, server) for name, server in self.servers.items()))
        except BaseException:
            await self.stop()
            raise
        return self

    @staticmethod
    async def _start(name: str, server: EmbeddedServer) -> None:
        try:
            await server.start()
        except OSError as exc:  # a port in use (a fixed port: `ports`)
            raise ConfigError(f"cannot listen on {server.host}:{server.port} for {name} ({exc.strerror or exc})") \
                from exc

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
