"""The same checker on the embedded broker (no broker URL): `renkei run` is killed -9 at
seeded random moments of a steady stream and started again each time; nothing accepted is
lost, nothing is applied twice, each resident's changes arrive in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fault_support import Scenario, at, kill_times

from bus.catalog import Catalog

pytestmark = pytest.mark.faults
SEED = 20261201


async def test_kill_9_of_the_embedded_bus_at_random_points_loses_nothing(tmp_path: Path, catalog: Catalog) -> None:
    moments = kill_times(SEED, 3, start=1.0, end=8.0, gap=1.5)
    async with Scenario(tmp_path, "embedded broker, kill -9 at random points", catalog, broker_url=None,
                        roles=("all",), n=500) as sc:
        t0 = asyncio.get_running_loop().time()
        sc.feed()
        for moment in moments:
            await at(moment, t0)
            sc.workers["all"].kill9()
            await sc.workers["all"].start()
        report = await sc.settle(kills=len(moments), at_s="/".join(f"{m:.1f}" for m in moments))
    assert report.ok, report.line() + "\n" + sc.logs()[-6000:]
