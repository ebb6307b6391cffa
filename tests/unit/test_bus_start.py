"""The bus opens its sources before it consumes anything: a source that cannot start (the intake's
port taken) fails the start, and nothing waiting in a queue is delivered meanwhile."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus.app import Bus, BusParts
from bus.catalog import Catalog
from bus.errors import ConfigError
from bus.ports import FunctionSink, Gatekeeper, Intake, Outbound, Receipt
from bus.settings import Settings
from bus.synthetic.samples import sample_records
from bus.topology import destination_queue


def _settings(tmp_path: Path, port: int) -> Settings:
    path = tmp_path / "renkei.toml"
    path.write_text(f'[bus]\nstate_dir = "state"\n\n[intake]\nhttp_host = "127.0.0.1"\nhttp_port = {port}\n',
                    encoding="utf-8")
    return Settings.load(path, env={})


class RecordingSource:
    """A source that records when it was opened and closed."""

    name = "recording"

    def __init__(self, events: list[str]) -> None:
        self.events = events

    @contextlib.asynccontextmanager
    async def open(self, intake: Intake, gate: Gatekeeper) -> AsyncIterator[None]:
        self.events.append("open")
        try:
            yield
        finally:
            self.events.append("closed")


async def test_a_failed_start_delivers_nothing_and_closes_what_it_opened(tmp_path: Path) -> None:
    catalog = Catalog.load()
    delivered: list[Outbound] = []

    def sinks(bus: Bus) -> dict[str, FunctionSink]:
        return {name: FunctionSink(lambda m: delivered.append(m) or Receipt.applied(m)) for name in bus.destinations}

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # a change routed while no deliverer runs: it waits in the destination queues
        router = Bus(_settings(tmp_path, port), catalog=catalog)
        await router.start(BusParts(deliverers=False))
        record = next(iter(sample_records("jumin.idou", catalog, seed=7, n=1)))
        body = catalog.get("jumin.idou").to_xml(record)
        assert (await router.intake.submit(body, content_type="application/xml", source="t")).status == "accepted"
        assert await router.wait_idle(20)
        await router.stop()

        events: list[str] = []
        bus = Bus(_settings(tmp_path, port), catalog=catalog, sources=[RecordingSource(events)])
        bus.sinks.update(sinks(bus))
        with pytest.raises(ConfigError, match="cannot listen"):
            await bus.start(BusParts(sources=True))
        waiting = sum([(await bus.broker.stats(destination_queue(d))).ready for d in bus.destinations])
        await bus.stop()
    assert delivered == []
    assert waiting > 0
    assert events == ["open", "closed"]  # opened before the HTTP intake failed, and closed again

    restarted = Bus(_settings(tmp_path, 0), catalog=catalog)
    restarted.sinks.update(sinks(restarted))
    await restarted.start(BusParts(sources=True))
    try:
        assert await restarted.wait_idle(20)
    finally:
        await restarted.stop()
    assert len(delivered) == waiting
