"""A bulk file keeps pace with the bus: no batch while the broker holds more than `max_backlog`
messages and the bus works them off; a backlog that does not change (nothing consumes it) holds
the file back once, for `patience`, and then never again; one that moves but stays high, once,
for MAX_PACE × `patience` (adapters.sources.ingest). The embedded broker counts its
backlog; RabbitMQ does not (None: no pacing)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from test_bulk_ingest import BatchIntake, write_avro

from adapters.sources.bulk import open_bulk
from adapters.sources.ingest import MAX_BACKLOG, MAX_PACE, PATIENCE, Ingester
from bus.app import Bus, BusParts
from bus.brokers.base import Broker, OutgoingMessage
from bus.brokers.embedded import EmbeddedBroker
from bus.catalog import Catalog
from bus.ports import Submission
from bus.settings import BusSettings, Settings
from bus.stages.intake import RawMessage
from bus.synthetic.samples import sample_records


class BackloggedIntake(BatchIntake):
    """A batch intake whose bus holds `depths[i]` messages at its i-th look; each batch it is
    given adds `per_batch` (a batch's deliveries), and the bus drains `drain` a look."""

    def __init__(self, depth: int, *, drain: int, per_batch: int) -> None:
        super().__init__()
        self.depth, self.drain, self.per_batch = depth, drain, per_batch
        self.looks = 0
        self.depth_at_submit: list[int] = []

    async def backlog(self) -> int | None:
        self.looks += 1
        self.depth = max(0, self.depth - self.drain)
        return self.depth

    async def submit_many(self, batch: Sequence[RawMessage]) -> list[Submission]:
        self.depth_at_submit.append(self.depth)
        self.depth += self.per_batch
        return await super().submit_many(batch)


def _bulk(tmp_path: Path, records: int):  # type: ignore[no-untyped-def]
    write_avro(tmp_path / "f.avro", records)
    return open_bulk(tmp_path / "f.avro", "avro", None, "test.batch")


def test_the_defaults() -> None:
    assert (MAX_BACKLOG, PATIENCE, MAX_PACE) == (5000, 2.0, 15)


async def test_a_batch_waits_until_the_falling_backlog_is_under_the_limit(tmp_path: Path) -> None:
    intake = BackloggedIntake(1_000, drain=50, per_batch=500)
    ingester = Ingester(intake, source="s", batch=100, window=1, max_backlog=600, patience=5)
    done = await ingester.run(_bulk(tmp_path, 1_000))
    assert done.counts()["accepted"] == 1_000
    assert [n for b in intake.batches for n in b] == list(range(1_000))  # file order, each once
    assert intake.depth_at_submit and max(intake.depth_at_submit) <= 600
    assert ingester.paced_seconds > 0


async def test_a_backlog_that_stops_falling_holds_the_file_back_once_for_its_patience(tmp_path: Path) -> None:
    intake = BackloggedIntake(10_000, drain=0, per_batch=0)  # nothing consumes (no bus running, or stuck)
    ingester = Ingester(intake, source="s", batch=100, window=1, max_backlog=600, patience=0.3)
    done = await asyncio.wait_for(ingester.run(_bulk(tmp_path, 1_000)), 10)
    assert done.counts()["accepted"] == 1_000 and done.state == "done"
    assert 0.3 <= ingester.paced_seconds < 0.6  # the first batch waited its patience; the nine after it none
    looks = intake.looks
    assert looks < 0.6 / 0.02 + 2  # the looks of that one wait, none after it


async def test_a_backlog_that_rises_while_the_bus_works_keeps_the_file_paced(tmp_path: Path) -> None:
    """Routing takes one message off the intake queue and puts one on each destination's: a busy
    bus's backlog can rise. That is no reason to stop pacing (a first version took it for one)."""
    intake = BackloggedIntake(10_000, drain=-7, per_batch=0)  # rises at every look, and never falls
    ingester = Ingester(intake, source="s", batch=100, window=1, max_backlog=600, patience=0.02)
    done = await asyncio.wait_for(ingester.run(_bulk(tmp_path, 300)), 10)
    assert done.counts()["accepted"] == 300
    # the first batch waited MAX_PACE x patience (0.3 s), not one patience (0.02 s); then the
    # pacing ended (a backlog that moves and stays that high is not worth waiting for again)
    assert MAX_PACE * 0.02 <= ingester.paced_seconds < 1
    assert len(intake.depth_at_submit) == 3 and intake.looks >= 10


async def test_an_intake_that_cannot_count_is_not_paced(tmp_path: Path) -> None:
    class Uncounted(BatchIntake):
        async def backlog(self) -> int | None:
            return None

    for intake in (BatchIntake(), Uncounted()):
        ingester = Ingester(intake, source="s", batch=100, window=1, max_backlog=0, patience=5)
        done = await ingester.run(_bulk(tmp_path, 300))
        assert done.counts()["accepted"] == 300 and ingester.paced_seconds == 0


async def test_the_embedded_broker_counts_every_message_it_holds_and_the_base_does_not(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "b.sqlite")
    await broker.connect()
    try:
        assert await broker.backlog() == 0
        await broker.declare("a")
        await broker.declare("b")
        await broker.publish_many([("a", OutgoingMessage(b"1", "m1", "k1")), ("a", OutgoingMessage(b"2", "m2", "k1")),
                                   ("b", OutgoingMessage(b"3", "m3", "k2"))])
        await broker.publish_many([("b", OutgoingMessage(b"4", "m4", "k3"))], delay=60)
        assert await broker.backlog() == 4  # ready, waiting behind its key, delayed: all held
    finally:
        await broker.close()
    assert await Broker.backlog(broker) is None  # a broker that does not count (RabbitMQ)


async def test_the_bus_s_intake_tells_its_broker_s_backlog(tmp_path: Path) -> None:
    catalog = Catalog.load()
    bus = Bus(Settings(bus=BusSettings(state_dir=tmp_path / "var")), sinks={}, catalog=catalog)
    await bus.start(BusParts(router=False, deliverers=False))
    try:
        raws = [catalog.get("jumin.idou").to_xml(r) for r in sample_records("jumin.idou", catalog, seed=5, n=3)]
        answers = await bus.intake.submit_many([RawMessage(raw, "application/xml", "s", "jumin.idou") for raw in raws])
        assert [a.status for a in answers] == ["accepted"] * 3
        assert await bus.intake.backlog() == 3 == await bus.broker.backlog()  # waiting for a router
    finally:
        await bus.stop()
