"""A broker outage is no poison (issue 15): publishes the broker does not take — a quorum queue
electing its leader, a lost connection — are retried until the broker takes them, and never
counted toward `poison_after`; a change that really crashes a stage still is.

On the real (file-backed) embedded broker, which counts every requeue in the delivery count
as RabbitMQ's quorum queues do; only its publishes are made to fail, N times, N well past
`poison_after`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from pipeline_support import accepted_delivery

from bus.brokers.base import Delivery, OutgoingMessage
from bus.brokers.embedded import EmbeddedBroker
from bus.catalog import Catalog
from bus.delivery import DeliveryStore, RetryPolicy
from bus.envelope import Envelope
from bus.errors import BrokerUnavailable, PublishNotConfirmed, StateStoreError, TransientError
from bus.paths import routes_dir
from bus.ports import Outbound, Receipt
from bus.routing.router import RouteTable
from bus.stages import DeliverStage, Dispatcher, ResidentLine, RouteStage, StageHooks
from bus.state import StateStore
from bus.topology import INTAKE_QUEUE, ROUTE_STAGE, destination_queue

POISON_AFTER = 3
FAILURES = 4 * POISON_AFTER


class FlakyBroker(EmbeddedBroker):
    """The embedded broker, whose publishes that `fails(queue, delay)` picks are refused while
    `failures` lasts (alternately not confirmed and unavailable, as during a failover); the
    publishes it took are in `taken`, in order."""

    def __init__(self, path: Path, fails: Callable[[str, float], bool], failures: int = FAILURES) -> None:
        super().__init__(path, poll_interval=0.02)
        self.fails, self.failures = fails, failures
        self.taken: list[tuple[str, OutgoingMessage]] = []

    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]], *, delay: float = 0.0) -> None:
        if self.failures > 0 and any(self.fails(queue, delay) for queue, _ in items):
            self.failures -= 1
            error = PublishNotConfirmed if self.failures % 2 else BrokerUnavailable
            raise error("the queue's leader is being elected")
        await super().publish_many(items, delay=delay)
        self.taken.extend(items)


async def until(check: Callable[[], bool], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


def changes_of_one_resident(first: Delivery, n: int) -> list[OutgoingMessage]:
    """`n` changes of the resident of `first`, in order (the same record, later 履歴番号)."""
    envelope = Envelope.from_headers(first.headers)
    fields = {f: getattr(envelope, f) for f in envelope.__slots__}  # type: ignore[attr-defined]
    out = []
    for k in range(n):
        later = Envelope(**{**fields, "message_id": f"{envelope.message_id}-{k}", "sequence": envelope.sequence + k})
        out.append(OutgoingMessage(first.body, later.message_id, first.key, dict(later.to_headers())))
    return out


async def _router(catalog: Catalog, tmp_path: Path, broker: FlakyBroker, *, publish_retry_for: float,
                  state: StateStore | None = None, **dispatch: float) -> tuple[FlakyBroker, DeliveryStore, Dispatcher]:
    """The route stage over the shipped routes on `broker` (its queues declared), its delivery
    store, and the dispatcher the broker calls (`dispatch`: its broker backoff settings)."""
    routes = RouteTable.load(routes_dir(), catalog)
    await broker.connect()
    for queue in (INTAKE_QUEUE, *(destination_queue(d) for d in {r.destination for r in routes.routes})):
        await broker.declare(queue)
    store = DeliveryStore(tmp_path / "delivery.sqlite")
    line = ResidentLine(store, ROUTE_STAGE, StageHooks())
    state = state or StateStore(tmp_path / "state.sqlite")
    stage = RouteStage(broker, catalog, routes, state, line, publish_retry_for=publish_retry_for)  # type: ignore[arg-type]
    return broker, store, Dispatcher(stage, StageHooks(), line, poison_after=POISON_AFTER, **dispatch)


async def test_a_router_whose_publishes_fail_past_the_poison_limit_routes_every_change_once_in_order(
        catalog: Catalog, tmp_path: Path) -> None:
    broker, store, dispatcher = await _router(catalog, tmp_path, FlakyBroker(
        tmp_path / "broker.sqlite", lambda queue, _: queue != INTAKE_QUEUE), publish_retry_for=0.01,
        broker_backoff=0.01)
    changes = changes_of_one_resident(await accepted_delivery(catalog, tmp_path), 3)
    for change in changes:
        await broker.publish(INTAKE_QUEUE, change)
    consumer = await broker.consume_batches(INTAKE_QUEUE, dispatcher.handle, batch_size=8)
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not await broker.drained([INTAKE_QUEUE]):
            assert asyncio.get_running_loop().time() < deadline, "the intake queue was never drained"
            await asyncio.sleep(0.05)
    finally:
        await consumer.cancel()
        await broker.close()
    assert store.dead_list() == [], "a broker outage dead-lettered a change"
    assert broker.failures == 0, "the publishes failed as often as scripted"
    published = [(queue, m.message_id) for queue, m in broker.taken if queue != INTAKE_QUEUE]
    assert len(published) == len(set(published)), "a projection was published twice"
    for queue in {q for q, _ in published}:
        order = [message_id.rsplit(".", 1)[0] for q, message_id in published if q == queue]
        assert order == [c.message_id for c in changes], f"{queue}: {order}"


async def test_broker_caused_requeues_do_not_count_toward_poison_but_a_real_crash_still_does(
        catalog: Catalog, tmp_path: Path) -> None:
    """Past `broker_retry_for` the batch is requeued (a stopping consumer is not held for
    ever): those requeues raise the broker's delivery count, and are not crashes."""
    # each handling tries the publish four times (twice in the stage, twice in the dispatcher)
    broker, store, dispatcher = await _router(catalog, tmp_path, FlakyBroker(
        tmp_path / "broker.sqlite", lambda queue, _: queue != INTAKE_QUEUE, failures=16 * POISON_AFTER),
        publish_retry_for=0.0, broker_retry_for=0.0)
    [change] = changes_of_one_resident(await accepted_delivery(catalog, tmp_path), 1)
    count = 0
    while broker.failures > 0:  # the broker redelivers what was requeued, counting each time
        count += 1
        delivery = Delivery(change.body, change.message_id, change.key, dict(change.headers), delivery_count=count)
        assert await dispatcher.handle([delivery]) == [False]
    assert count > POISON_AFTER and store.dead_list() == []
    # the same change now crashes the stage for real: POISON_AFTER crashes, not one, dead-letter it
    poison = Delivery(b"<not-xml", change.message_id, change.key, dict(change.headers))
    for crash in range(1, POISON_AFTER + 1):
        count += 1
        answer = await dispatcher.handle([Delivery(poison.body, poison.message_id, poison.key, poison.headers,
                                                   delivery_count=count)])
        assert answer == [crash == POISON_AFTER], f"crash {crash} of {POISON_AFTER}"
    [letter] = store.dead_list()
    assert (letter.code, letter.message_id) == ("D300", change.message_id)
    await broker.close()


class FailingSink:
    """Fails resident `a`'s first change transiently `times` times, then applies everything."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.applied: list[int] = []

    async def deliver(self, message: Outbound) -> Receipt:
        if message.envelope.sequence == 1 and self.times > 0:
            self.times -= 1
            raise TransientError("503 from the receiving system")
        self.applied.append(message.envelope.sequence)
        return Receipt.applied(message)


async def test_a_deliverer_whose_retry_publishes_fail_past_the_poison_limit_delivers_once_in_order(
        catalog: Catalog, tmp_path: Path) -> None:
    """The deliver stage's retry path: a transient failure publishes the change to a delay
    queue; while that publish fails (the delay queue's leader moving) it is no crash."""
    failures = 3 * POISON_AFTER  # the old code tried two publishes a delivery: dead after POISON_AFTER
    broker = FlakyBroker(tmp_path / "broker.sqlite", lambda _, delay: delay > 0, failures=failures)
    await broker.connect()
    queue = destination_queue("zei")
    await broker.declare(queue)
    store = DeliveryStore(tmp_path / "delivery.sqlite")
    policy = RetryPolicy(attempts=1, backoff=0.001, tiers=(0.1, 0.2), deadline=60.0, poison_after=POISON_AFTER)
    line = ResidentLine(store, "zei", StageHooks())
    sink = FailingSink(times=failures + 1)  # failing until a retry copy is published, and once more
    deliverer = DeliverStage(broker, catalog, line, sink, policy=policy)  # type: ignore[arg-type]
    dispatcher = Dispatcher(deliverer, StageHooks(), line, poison_after=POISON_AFTER, broker_backoff=0.01)
    for sequence in (1, 2, 3):
        envelope = Envelope(message_id=f"a-{sequence:03d}", kind="zei.jumin", schema_version=1,
                            content_type="application/xml", municipality="131016", source="jumin",
                            subject=f"{'a':0>32}", sequence=sequence, destination="zei", route="zei-all-changes")
        await broker.publish(queue, OutgoingMessage(b"<unread/>", envelope.message_id, envelope.subject,
                                                    dict(envelope.to_headers())))
    consumer = await broker.consume(queue, dispatcher, concurrency=2)
    try:
        await until(lambda: len(sink.applied) >= 3 or bool(store.dead_list()))
    finally:
        await consumer.cancel()
        await broker.close()
    assert store.dead_list() == [], "a broker outage dead-lettered a change"
    assert broker.failures == 0, "the retry publishes failed as often as scripted"
    assert sink.applied == [1, 2, 3]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()



class FlakyState(StateStore):
    """The state store, unreachable for its first `failures` batch lookups (the shared
    PostgreSQL restarting)."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    def routed_among(self, message_ids: Sequence[str]) -> set[str]:
        if self.failures > 0:
            self.failures -= 1
            raise StateStoreError("cannot read the state store postgresql://db:5432/renkei (schema renkei_state)")
        return super().routed_among(message_ids)


async def test_a_state_store_outage_past_the_poison_limit_is_no_poison_and_routes_the_change_once(
        catalog: Catalog, tmp_path: Path) -> None:
    """The sibling of the broker's case: the shared state store (PostgreSQL) down says nothing
    about the change either; requeued past `poison_after`, it is routed once when the store is back."""
    state = FlakyState(tmp_path / "state.sqlite", failures=4 * POISON_AFTER)
    broker, store, dispatcher = await _router(catalog, tmp_path, FlakyBroker(
        tmp_path / "broker.sqlite", lambda _, __: False), publish_retry_for=0.0, state=state, broker_retry_for=0.0)
    [change] = changes_of_one_resident(await accepted_delivery(catalog, tmp_path), 1)
    count, answer = 0, [False]
    while answer == [False]:  # the broker redelivers what was requeued, counting each time
        count += 1
        assert count < 10 * POISON_AFTER, "never routed"
        delivery = Delivery(change.body, change.message_id, change.key, dict(change.headers), delivery_count=count)
        answer = await dispatcher.handle([delivery])
    assert count > POISON_AFTER and store.dead_list() == [], "a store outage dead-lettered the change"
    assert state.failures == 0 and broker.taken, "routed once the store was back"
    await broker.close()
