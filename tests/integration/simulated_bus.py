"""A bus on the embedded broker delivering over HTTP to every simulator of a SimulatorCluster,
some receivers pinned to the v2 projection kinds: what the end-to-end domain tests share."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection
from pathlib import Path

from adapters.simulators import SimulatorCluster
from adapters.transports.http import HttpSink
from bus.app import Bus
from bus.catalog import Catalog
from bus.delivery.policy import RetryPolicy
from bus.settings import BusSettings, Settings
from bus.settings_sections import DestinationSettings

RETRY = RetryPolicy(attempts=2, backoff=0.05, tiers=(0.5,), deadline=60.0)


@contextlib.asynccontextmanager
async def bus_to_simulators(sims: SimulatorCluster, catalog: Catalog, state_dir: Path, *,
                            pinned_v2: Collection[str] = ()) -> AsyncIterator[tuple[Bus, Settings]]:
    """A started bus with an HTTP destination per simulator of `sims` (and its settings, for
    the pseudonym key); stopped, its sinks closed, on leaving."""
    destinations = {name: DestinationSettings(name, "http", retry=RETRY,
                                              schema_version=2 if name in pinned_v2 else None,
                                              options={"url": sims.messages_url(name)})
                    for name in sims.states}
    settings = Settings(bus=BusSettings(state_dir=state_dir), retry=RETRY, destinations=destinations)
    sinks = {name: HttpSink(sims.messages_url(name), name=name) for name in sims.states}
    bus = Bus(settings, sinks=dict(sinks), catalog=catalog)
    await bus.start()
    try:
        yield bus, settings
    finally:
        await bus.stop()
        for sink in sinks.values():
            await sink.aclose()
