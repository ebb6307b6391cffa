"""The broker contract, once: every backend's test module subclasses `BrokerContract`.

A subclass provides the fixture `make_broker`: a function returning a new, unconnected
broker on the same backing store (the same file, the same server), so that a test can
close one broker and open another over the same queues.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from batch_cases import BatchContract

from bus.brokers.base import Broker, Delivery, OutgoingMessage, QueueDescription
from bus.errors import BrokerError, PublishNotConfirmed

MakeBroker = Callable[[], Broker]


def unique_queue() -> str:
    return f"renkei.test.{uuid.uuid4().hex[:12]}"


def message(n: int, key: str = "k", **headers: Any) -> OutgoingMessage:
    return OutgoingMessage(f"body {n}".encode(), f"m-{n}", key, {"sequence": n, **headers})


Check = Callable[[], Awaitable[bool]] | Callable[[], bool]


async def eventually(check: Check, within: float = 15.0) -> None:
    """Wait until `check()` is true (sync or async), failing after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {within} s: {check}")
        await asyncio.sleep(0.02)


class Recorder:
    """A handler that records what it saw; it can fail on chosen attempts or wait for a gate."""

    def __init__(self, fail: Callable[[Delivery], bool] = lambda d: False, delay: float = 0.0) -> None:
        self.seen: list[Delivery] = []
        self.done: list[Delivery] = []
        self.fail, self.delay = fail, delay
        self.gate: asyncio.Event | None = None
        self.active: Counter[str] = Counter()
        self.max_active = 0
        self.max_active_per_key = 0

    async def __call__(self, delivery: Delivery) -> None:
        self.seen.append(delivery)
        self.active[delivery.key] += 1
        self.max_active = max(self.max_active, sum(self.active.values()))
        self.max_active_per_key = max(self.max_active_per_key, self.active[delivery.key])
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail(delivery):
                raise RuntimeError("handler failed on purpose")
            self.done.append(delivery)
        finally:
            self.active[delivery.key] -= 1

    def done_ids(self) -> list[str]:
        return [d.message_id for d in self.done]


class BrokerContract(BatchContract):
    """The cases. Subclasses provide the fixtures `make_broker` and `make_unreachable` (a broker
    that cannot be reached or read), and may override `queue` and `counts_delayed`."""

    #: whether `describe` can count delayed messages (RabbitMQ cannot list its delay queues)
    counts_delayed = True

    @pytest.fixture
    async def broker(self, make_broker: MakeBroker) -> AsyncIterator[Broker]:
        broker = make_broker()
        await broker.connect()
        yield broker
        await broker.close()

    @pytest.fixture
    def queue(self) -> str:
        return unique_queue()

    @pytest.fixture
    async def declared(self, broker: Broker, queue: str) -> str:
        await broker.declare(queue)
        return queue

    # -- the cases -------------------------------------------------------------------------

    async def test_a_published_message_is_consumed_with_the_same_body_headers_id_and_key(
        self, broker: Broker, declared: str
    ) -> None:
        sent = OutgoingMessage("住民異動 <xml/>".encode(), "msg-1", "subject-a",
                               {"kind": "jumin.idou", "sequence": 3, "municipality": "131016"})
        await broker.publish(declared, sent)
        handler = Recorder()
        consumer = await broker.consume(declared, handler)
        await eventually(lambda: len(handler.done) == 1)
        await consumer.cancel()
        got = handler.done[0]
        assert (got.body, got.message_id, got.key) == (sent.body, sent.message_id, sent.key)
        assert got.headers == sent.headers
        assert (got.redelivered, got.delivery_count) == (False, 1)

    async def test_an_acked_message_is_gone_from_the_queue(self, broker: Broker, declared: str) -> None:
        await broker.publish(declared, message(1))
        first = Recorder()
        consumer = await broker.consume(declared, first)
        await eventually(lambda: len(first.done) == 1)
        await consumer.cancel()
        await eventually(lambda: _counts(broker, declared, (0, 0)))
        second = Recorder()
        consumer = await broker.consume(declared, second)
        await asyncio.sleep(0.5)
        await consumer.cancel()
        assert second.seen == []

    async def test_a_failing_handler_requeues_and_the_message_returns_redelivered_with_count_2(
        self, broker: Broker, declared: str
    ) -> None:
        await broker.publish(declared, message(1))
        handler = Recorder(fail=lambda d: d.delivery_count == 1)
        consumer = await broker.consume(declared, handler)
        await eventually(lambda: len(handler.done) == 1)
        await consumer.cancel()
        first, second = handler.seen
        assert (first.redelivered, first.delivery_count) == (False, 1)
        assert (second.message_id, second.redelivered, second.delivery_count) == ("m-1", True, 2)

    async def test_a_requeued_message_is_not_overtaken_by_the_later_messages_of_its_key(
        self, broker: Broker, declared: str
    ) -> None:
        await broker.publish_many([(declared, message(n, key="resident-1")) for n in range(1, 7)])
        handler = Recorder(fail=lambda d: d.message_id in ("m-1", "m-4") and d.delivery_count == 1)
        consumer = await broker.consume(declared, handler, concurrency=4, prefetch=10)
        await eventually(lambda: len(handler.done) == 6)
        await consumer.cancel()
        assert handler.done_ids() == [f"m-{n}" for n in range(1, 7)]

    async def test_one_key_keeps_its_order_while_different_keys_interleave(
        self, broker: Broker, declared: str
    ) -> None:
        keys = [f"resident-{k}" for k in range(6)]
        items = [(declared, message(n, key=keys[n % len(keys)])) for n in range(120)]
        await broker.publish_many(items)
        handler = Recorder(delay=0.002)
        consumer = await broker.consume(declared, handler, concurrency=8)
        await eventually(lambda: len(handler.done) == 120)
        await consumer.cancel()
        by_key: dict[str, list[int]] = defaultdict(list)
        for d in handler.done:
            by_key[d.key].append(int(d.headers["sequence"]))
        assert all(seqs == sorted(seqs) and len(seqs) == 20 for seqs in by_key.values())
        assert handler.max_active_per_key == 1
        assert handler.max_active > 1  # keys really ran concurrently

    async def test_publishing_to_an_undeclared_queue_raises_publish_not_confirmed(
        self, broker: Broker, queue: str
    ) -> None:
        with pytest.raises(PublishNotConfirmed):
            await broker.publish(queue + ".never-declared", message(1))
        await broker.declare(queue)
        with pytest.raises(PublishNotConfirmed):
            await broker.publish_many([(queue, message(1)), (queue + ".never-declared", message(2))])
        await broker.publish(queue, message(3))  # the broker is still usable afterwards

    async def test_consuming_an_undeclared_queue_raises_and_leaves_no_task_running(
        self, broker: Broker, queue: str
    ) -> None:
        before = asyncio.all_tasks()
        with pytest.raises(BrokerError):
            await broker.consume(queue + ".never-declared", Recorder(), concurrency=4)
        await asyncio.sleep(0)
        left = [t for t in asyncio.all_tasks() - before if "_work" in repr(t.get_coro())]
        assert left == []  # the dispatcher's workers stopped (before: "Task was destroyed but it is pending!")

    async def test_stats_count_ready_and_in_flight_messages(self, broker: Broker, declared: str) -> None:
        await broker.publish_many([(declared, message(n, key=f"r{n}")) for n in range(5)])
        await eventually(lambda: _counts(broker, declared, (5, 0)))
        handler = Recorder()
        handler.gate = asyncio.Event()
        consumer = await broker.consume(declared, handler, concurrency=2, prefetch=2)
        await eventually(lambda: len(handler.seen) == 2)
        await eventually(lambda: _counts(broker, declared, (3, 2)))
        assert (await broker.stats(declared)).consumers >= 1
        handler.gate.set()
        await eventually(lambda: len(handler.done) == 5)
        await consumer.cancel()
        await eventually(lambda: _counts(broker, declared, (0, 0)))

    async def test_a_queue_is_drained_only_when_no_message_is_ready_or_in_flight(
        self, broker: Broker, declared: str
    ) -> None:
        other = unique_queue()
        await broker.declare(other)
        assert await broker.drained([declared, other])
        await broker.publish(other, message(1))
        await eventually(lambda: _not(broker.drained([declared, other])))  # ready in one of them
        assert await broker.drained([declared])
        await broker.publish_many([(declared, message(n, key=f"r{n}")) for n in range(2)])
        await eventually(lambda: _not(broker.drained([declared])))
        handler = Recorder()
        handler.gate = asyncio.Event()
        consumer = await broker.consume(declared, handler, concurrency=2, prefetch=2)
        await eventually(lambda: len(handler.seen) == 2)
        await eventually(lambda: _counts(broker, declared, (0, 2)))
        assert not await broker.drained([declared])  # in flight only
        handler.gate.set()
        await eventually(lambda: len(handler.done) == 2)
        await consumer.cancel()
        await eventually(lambda: broker.drained([declared]))

    async def test_publish_many_of_500_delivers_each_message_exactly_once(
        self, broker: Broker, declared: str
    ) -> None:
        await broker.publish_many([(declared, message(n, key=f"r{n % 50}")) for n in range(500)])
        handler = Recorder()
        consumer = await broker.consume(declared, handler, concurrency=16)
        await eventually(lambda: len(handler.done) >= 500)
        await asyncio.sleep(0.3)  # room for a duplicate to show up
        await consumer.cancel()
        assert sorted(handler.done_ids()) == sorted(f"m-{n}" for n in range(500))

    async def test_a_consumer_cancelled_mid_stream_leaves_the_rest_to_the_next_consumer(
        self, broker: Broker, declared: str
    ) -> None:
        await broker.publish_many([(declared, message(n, key=f"r{n % 10}")) for n in range(60)])
        first = Recorder(delay=0.01)
        consumer = await broker.consume(declared, first, concurrency=4, prefetch=8)
        await eventually(lambda: len(first.done) >= 10)
        await consumer.cancel()
        assert sum(first.active.values()) == 0  # cancel returned after running handlers finished
        second = Recorder()
        consumer = await broker.consume(declared, second, concurrency=4)
        await eventually(lambda: len(first.done) + len(second.done) >= 60)
        await asyncio.sleep(0.2)
        await consumer.cancel()
        assert sorted(first.done_ids() + second.done_ids()) == sorted(f"m-{n}" for n in range(60))
        assert len(first.seen) == len(first.done)  # nothing it started was left unfinished

    async def test_messages_survive_closing_and_reopening_the_broker(
        self, make_broker: MakeBroker, queue: str
    ) -> None:
        first = make_broker()
        await first.connect()
        await first.declare(queue)
        await first.publish_many([(queue, message(n, key=f"r{n % 3}")) for n in range(10)])
        await first.close()
        second = make_broker()
        await second.connect()
        try:
            handler = Recorder()
            consumer = await second.consume(queue, handler)
            await eventually(lambda: len(handler.done) == 10)
            await consumer.cancel()
        finally:
            await second.close()
        assert sorted(handler.done_ids()) == sorted(f"m-{n}" for n in range(10))


    async def test_a_delayed_message_is_not_delivered_before_its_delay_and_then_is(
        self, broker: Broker, declared: str
    ) -> None:
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        await broker.publish(declared, message(1, key="retrying", attempt=2), delay=DELAY)
        await broker.publish(declared, message(2, key="others"))
        seen_at: dict[str, float] = {}

        async def handler(delivery: Delivery) -> None:
            seen_at[delivery.message_id] = loop.time()

        consumer = await broker.consume(declared, handler)
        await eventually(lambda: len(seen_at) == 2)
        await consumer.cancel()
        assert seen_at["m-2"] - sent_at < DELAY  # the other resident was not held back
        assert seen_at["m-1"] - sent_at >= DELAY - 0.05  # timers may round down a few ms

    async def test_delayed_messages_made_due_now_by_another_broker_are_delivered_at_once_in_order(
        self, broker: Broker, declared: str, make_broker: MakeBroker
    ) -> None:
        """`renkei retry now`: an operator's process, not the one that delayed them, makes the
        changes waiting in a long retry tier due now; their headers come back for the audit."""
        await broker.publish_many([(declared, message(1, key="a", tier=4)), (declared, message(2, key="b"))],
                                  delay=LONG_TIER)
        await broker.publish(declared, message(3, key="c", tier=2), delay=SHORT_TIER)
        await broker.publish(declared, message(4, key="others"))
        operator = make_broker()
        await operator.connect()
        try:
            moved = await operator.expedite(declared, waits=(SHORT_TIER, LONG_TIER))
            again = await operator.expedite(declared, waits=(SHORT_TIER, LONG_TIER))
        finally:
            await operator.close()
        assert sorted(h["sequence"] for h in moved) == [1, 2, 3] and again == []
        assert [h["sequence"] for h in moved if h["sequence"] < 3] == [1, 2]  # one tier's order is kept
        handler = Recorder()
        consumer = await broker.consume(declared, handler)
        await eventually(lambda: len(handler.done) == 4, within=10)
        await consumer.cancel()
        assert sorted(handler.done_ids()) == ["m-1", "m-2", "m-3", "m-4"]
        assert next(d for d in handler.done if d.message_id == "m-1").headers == {"sequence": 1, "tier": 4}


    async def test_describe_tells_each_queue_declared_ready_in_flight_and_consumers(
        self, broker: Broker, declared: str, make_broker: MakeBroker
    ) -> None:
        missing = declared + ".never-declared"
        await broker.publish_many([(declared, message(n, key=f"r{n}")) for n in range(5)])
        handler = Recorder()
        handler.gate = asyncio.Event()
        consumer = await broker.consume(declared, handler, concurrency=2, prefetch=2)
        await eventually(lambda: len(handler.seen) == 2)

        async def seen() -> bool:
            d = (await broker.describe([declared, missing])).queues[declared]
            return (d.declared, d.consumers) == (True, 1) and d.ready is not None and d.in_flight is not None \
                and d.ready + d.in_flight == 5 and d.in_flight >= 2  # a sharded queue prefetches per shard

        await eventually(seen)
        described = await broker.describe([declared, missing])
        assert described.reachable and described.problem is None and described.backend == broker.name
        assert described.where and "guest:guest" not in described.where
        assert described.queues[missing].declared is False
        assert described.queues[missing].ready == 0
        # another instance, never connected, sees the same queue (status reads from outside)
        outside = await make_broker().describe([declared])
        assert (outside.queues[declared].declared, outside.queues[declared].consumers) == (True, 1)
        assert outside.queues[declared].ready == described.queues[declared].ready
        handler.gate.set()
        await eventually(lambda: len(handler.done) == 5)
        await consumer.cancel()

    async def test_describe_counts_delayed_messages_apart_from_ready_ones(
        self, broker: Broker, declared: str
    ) -> None:
        await broker.publish(declared, message(1, key="waiting"), delay=30)
        await broker.publish(declared, message(2, key="now"))

        async def seen() -> bool:
            return (await broker.describe([declared])).queues[declared].ready == 1

        await eventually(seen)
        delayed = (await broker.describe([declared])).queues[declared].delayed
        assert delayed == (1 if self.counts_delayed else None)

    async def test_describe_of_an_unreachable_broker_says_so_instead_of_raising(
        self, make_unreachable: MakeBroker
    ) -> None:
        described = await make_unreachable().describe(["renkei.intake"])
        assert described.reachable is False
        assert described.problem
        assert described.queues["renkei.intake"] == QueueDescription.unknown("renkei.intake")
        assert "secret" not in described.where and "secret" not in described.problem


#: the delay of the delay case (it waits in `<queue>.wait` on RabbitMQ)
DELAY = 0.6
#: retry tiers no test waits for: only `expedite` brings their messages back
SHORT_TIER, LONG_TIER = 600.0, 3600.0


async def _not(check: Awaitable[bool]) -> bool:
    return not await check


async def _counts(broker: Broker, queue: str, expected: tuple[int, int]) -> bool:
    stats = await broker.stats(queue)
    return (stats.ready, stats.in_flight) == expected
