"""Every long-running process of renkei sets its garbage collector as `renkei run` does
(bus.heap.settle_heap: the startup heap frozen, young collections every 50,000 allocations).

Only `renkei run` did. The bus's other processes (the router and deliverer processes of
`renkei demo`, of a bulk file and of the benchmarks; the simulators' process) ran with CPython's
defaults, whose full collections walk the whole startup heap again: in `renkei run` at 200/s the
simulators' process paused 65 ms in one of them, mid-load, and the deliveries waiting on it with
it (bench/README.md, stop 28). Each test here fails on the code before."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

from adapters.simulators.apart import SimulatorProcess
from bus.app import Bus
from bus.demo_procs import BusProcesses, split
from bus.heap import GC_THRESHOLDS
from bus.settings import BusSettings, Settings

KEY = b"process-heaps-test-pseudonym-key-0001"


def test_a_bus_process_of_the_demo_and_the_bulk_file_settles_its_heap(tmp_path: Path) -> None:
    settings = Settings(bus=BusSettings(state_dir=tmp_path / "state", pseudonym_key=KEY))

    async def run() -> list[tuple[int, ...] | None]:
        destinations = Bus(settings).destinations
        group = BusProcesses(settings, split(destinations, 2), null_sinks=True)
        try:
            await group.start()
        finally:
            reports = await group.stop()
        return [report.gc_thresholds for report in reports]

    assert asyncio.run(run()) == [GC_THRESHOLDS]  # before: CPython's (700, 10, 10)


def test_the_simulators_process_settles_its_heap(tmp_path: Path) -> None:
    async def run() -> tuple[int, ...] | None:
        simulators = SimulatorProcess(store=tmp_path / "received", systems=["zei"])
        await simulators.start()
        await simulators.stop()
        return simulators.gc_thresholds

    assert asyncio.run(run()) == GC_THRESHOLDS


@pytest.mark.parametrize("entry", ["bus.cli.run", "bus.cli.ingest", "bus.cli.simulate", "bus.cli.demo"])
def test_every_command_that_serves_or_streams_settles_its_heap(entry: str) -> None:
    """The commands run in processes of their own, which these tests do not start for this (a
    server, a bulk file); their sources must call it, as `renkei run` always has."""
    module = __import__(entry, fromlist=["_"])
    assert "settle_heap" in inspect.getsource(module)
