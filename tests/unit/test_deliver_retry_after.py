"""The deliver stage honours a destination's `Retry-After`: never tried again sooner than it asked,
in process or through the broker's delay tiers (chosen so that RabbitMQ's delay queues stay few)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from adapters.transports.errors import HttpTransientError
from bus.brokers.base import Delivery, OutgoingMessage
from bus.catalog import Catalog
from bus.delivery import DeliveryStore, RetryPolicy
from bus.envelope import Envelope
from bus.ports import Outbound, Receipt
from bus.routing.router import RouteTable
from bus.stages import DeliverStage, ResidentLine, StageHooks
from bus.synthetic import Registry
from bus.topology import destination_queue


class DelayBroker:
    """Keeps what is published and with which delay (the broker is not what is tested)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, float]] = []

    async def publish(self, queue: str, message: OutgoingMessage, *, delay: float = 0.0) -> None:
        self.published.append((queue, delay))

    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]], *, delay: float = 0.0) -> None:
        self.published += [(queue, delay) for queue, _ in items]


class BusySink:
    """Answers 503 with `Retry-After: <seconds>` the first `times` calls, then applies (the error
    is the HTTP sink's, which reads the header: tests/unit/test_transport_http.py)."""

    def __init__(self, seconds: str, times: int) -> None:
        self.seconds, self.left = float(seconds), times
        self.calls: list[float] = []

    async def deliver(self, message: Outbound) -> Receipt:
        self.calls.append(time.monotonic())
        if self.left:
            self.left -= 1
            raise HttpTransientError("zei", "Service Unavailable", 503, self.seconds)
        return Receipt.applied(message)


@pytest.fixture(scope="module")
def delivery() -> Delivery:
    catalog = Catalog.load()
    record = next(Registry(seed=3).events(1))
    match = next(m for m in RouteTable.load(catalog=catalog).route(record, record["municipality_code"])
                 if m.route.destination == "zei")
    env = Envelope(message_id="m-001", kind="zei.jumin", schema_version=1, content_type="application/xml",
                   municipality="131016", source="jumin", subject="0" * 32, sequence=1, destination="zei",
                   route="zei-all-changes")
    return Delivery(match.target.to_xml(match.record), env.message_id, env.subject, dict(env.to_headers()))


def stage(tmp_path: Path, sink: BusySink, policy: RetryPolicy) -> tuple[DeliverStage, DelayBroker]:
    broker = DelayBroker()
    line = ResidentLine(DeliveryStore(tmp_path / "delivery.sqlite"), "zei", StageHooks())
    return DeliverStage(broker, Catalog.load(), line, sink, policy=policy), broker  # type: ignore[arg-type]


async def test_a_short_retry_after_is_waited_in_process_before_the_next_try(
        tmp_path: Path, delivery: Delivery) -> None:
    sink = BusySink("0.4", times=1)
    deliverer, broker = stage(tmp_path, sink, RetryPolicy(attempts=3, backoff=0.001))
    await deliverer.handle([delivery])
    assert len(sink.calls) == 2 and broker.published == []  # applied on the second, in-process try
    assert sink.calls[1] - sink.calls[0] >= 0.4  # not the 1 ms backoff: what the destination asked


async def test_a_long_retry_after_goes_to_the_broker_at_once_delayed_by_the_first_tier_that_long(
        tmp_path: Path, delivery: Delivery) -> None:
    sink = BusySink("120", times=1)
    deliverer, broker = stage(tmp_path, sink, RetryPolicy(attempts=3, tiers=(10.0, 60.0, 600.0, 3600.0)))
    await deliverer.handle([delivery])
    assert len(sink.calls) == 1  # no in-process retry two minutes too soon
    assert broker.published == [(destination_queue("zei"), 600.0)]  # not the 10 s of the first tier


async def test_a_retry_after_beyond_every_tier_waits_the_whole_minutes_that_cover_it(
        tmp_path: Path, delivery: Delivery) -> None:
    sink = BusySink("150", times=1)
    deliverer, broker = stage(tmp_path, sink, RetryPolicy(attempts=1, tiers=(10.0, 60.0)))
    await deliverer.handle([delivery])
    assert broker.published == [(destination_queue("zei"), 180.0)]


async def test_a_short_retry_after_beyond_short_tiers_waits_whole_seconds_not_a_minute(
        tmp_path: Path, delivery: Delivery) -> None:
    sink = BusySink("1.5", times=1)
    deliverer, broker = stage(tmp_path, sink, RetryPolicy(attempts=1, tiers=(0.3,)))
    await deliverer.handle([delivery])
    assert broker.published == [(destination_queue("zei"), 2.0)]


async def test_a_retry_after_shorter_than_the_tier_keeps_the_tier(tmp_path: Path, delivery: Delivery) -> None:
    sink = BusySink("2", times=1)
    deliverer, broker = stage(tmp_path, sink, RetryPolicy(attempts=1, tiers=(10.0, 60.0)))
    await deliverer.handle([delivery])
    assert broker.published == [(destination_queue("zei"), 10.0)]


async def test_a_retry_after_is_cut_at_the_deadline(tmp_path: Path, delivery: Delivery) -> None:
    sink = BusySink("7200", times=1)
    deliverer, broker = stage(tmp_path, sink, RetryPolicy(attempts=1, tiers=(10.0,), deadline=300.0))
    await deliverer.handle([delivery])
    [(_, delay)] = broker.published
    assert 299.0 <= delay <= 300.0  # tried once more at the deadline, then dead-lettered if still busy
