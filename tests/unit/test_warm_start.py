"""What the first changes used to wait for is made as the bus starts.

- A deliverer makes its sink's HTTP client: at the first delivery the HTTP sink imported
  aiohttp and loaded the TLS context, 0.3 s with the bus's event loop held, so at 200 changes/s
  the first 22 changes took 125 ms each and decided much of a short run's p99 (bench/README.md,
  stop 28). `prepare` opens no connection, so a destination that is down does not stop the start.
- The router compiles the XSDs of the kinds its routes take and make (each was compiled at its
  first use: 18 ms of the first changes' time in that run)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.transports.aioclient import AiohttpClient
from adapters.transports.http import HttpSink
from bus.app import Bus, BusParts
from bus.ports import FunctionSink, Receipt, prepare_sink
from bus.settings import BusSettings, Settings

NOBODY = "http://127.0.0.1:9/messages"  # the discard port: nothing listens


async def test_prepare_makes_the_client_and_opens_no_connection() -> None:
    sink = HttpSink(NOBODY, name="zei")
    assert sink._client is None  # made at first use, as before, unless prepared
    prepare_sink(sink)
    assert isinstance(sink._client, AiohttpClient)
    assert sink._client._session is None  # no session, no connection yet
    await sink.aclose()


def test_a_sink_without_prepare_is_left_alone() -> None:
    prepare_sink(FunctionSink(lambda message: Receipt.applied(message)))  # nothing to call, nothing raised


class _Preparing(FunctionSink):
    def __init__(self) -> None:
        super().__init__(lambda message: Receipt.applied(message))
        self.prepared = 0

    def prepare(self) -> None:
        self.prepared += 1


def test_the_router_compiles_the_schemas_of_its_routes_as_it_starts(tmp_path: Path) -> None:
    async def start_and_stop() -> Bus:
        bus = Bus(Settings(bus=BusSettings(state_dir=tmp_path / "var", pseudonym_key=b"p" * 32)), sinks={})
        await bus.start(BusParts(router=True, deliverers=False, sources=False))
        await bus.stop()
        return bus

    bus = asyncio.run(start_and_stop())
    kinds = {r.takes for r in bus.routes.routes} | {r.projection.kind for r in bus.routes.routes}
    assert len(kinds) > 5
    for kind in kinds:
        for version in bus.catalog.versions(kind):
            assert "xml_schema" in vars(bus.catalog.get(kind, version)), (kind, version)  # compiled


def test_each_deliverer_prepares_its_sink_as_the_bus_starts(tmp_path: Path) -> None:
    sinks = {name: _Preparing() for name in ("zei", "kokuho")}

    async def start_and_stop() -> None:
        bus = Bus(Settings(bus=BusSettings(state_dir=tmp_path / "var", pseudonym_key=b"p" * 32)), sinks=dict(sinks))
        await bus.start(BusParts(router=False, deliverers=True, sources=False, only_destinations=frozenset(sinks)))
        await bus.stop()

    asyncio.run(start_and_stop())
    assert {name: sink.prepared for name, sink in sinks.items()} == {"zei": 1, "kokuho": 1}
