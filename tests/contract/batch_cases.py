"""The broker contract for batches (`Broker.consume_batches`), mixed into `BrokerContract`:
every backend hands its deliveries to a stage in batches with the same guarantees as one by one
(a key's messages in order, one at a time; True acks, False requeues; raising requeues all)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from bus.brokers.base import Broker, Delivery, OutgoingMessage


class BatchRecorder:
    """A batch handler that records each batch; `answer` says True (ack) or False (requeue)
    per delivery, or raises to fail the whole batch."""

    def __init__(self, answer: Callable[[Delivery], bool] = lambda d: True, delay: float = 0.0) -> None:
        self.batches: list[list[Delivery]] = []
        self.acked: list[Delivery] = []
        self.answer, self.delay = answer, delay
        self.active: Counter[str] = Counter()
        self.max_active_per_key = 0

    async def __call__(self, batch: Sequence[Delivery]) -> list[bool]:
        self.batches.append(list(batch))
        for d in batch:
            self.active[d.key] += 1
            self.max_active_per_key = max(self.max_active_per_key, self.active[d.key])
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            answers = [self.answer(d) for d in batch]
            self.acked.extend(d for d, ok in zip(batch, answers, strict=True) if ok)
            return answers
        finally:
            for d in batch:
                self.active[d.key] -= 1

    def acked_ids(self) -> list[str]:
        return [d.message_id for d in self.acked]


def _message(n: int, key: str) -> OutgoingMessage:
    return OutgoingMessage(f"body {n}".encode(), f"m-{n}", key, {"sequence": n})


class BatchContract:
    """Needs the fixtures `broker` and `declared` (BrokerContract's)."""

    async def test_batches_carry_each_key_once_in_order_and_every_message_is_acked_once(
        self, broker: Broker, declared: str
    ) -> None:
        keys = [f"resident-{k}" for k in range(8)]
        await broker.publish_many([(declared, _message(n, keys[n % len(keys)])) for n in range(160)])
        handler = BatchRecorder(delay=0.005)
        consumer = await broker.consume_batches(declared, handler, concurrency=2, batch_size=16, prefetch=64)
        await _eventually(lambda: len(handler.acked) >= 160)
        await asyncio.sleep(0.2)  # room for a duplicate to show up
        await consumer.cancel()
        assert sorted(handler.acked_ids()) == sorted(f"m-{n}" for n in range(160))
        assert all(len({d.key for d in batch}) == len(batch) <= 16 for batch in handler.batches)
        assert max(len(batch) for batch in handler.batches) > 1  # batches really formed
        assert handler.max_active_per_key == 1
        by_key: dict[str, list[int]] = defaultdict(list)
        for d in handler.acked:
            by_key[d.key].append(int(d.headers["sequence"]))
        assert all(seqs == sorted(seqs) and len(seqs) == 20 for seqs in by_key.values())
        assert await broker.drained([declared])

    async def test_a_false_answer_requeues_only_that_message_and_its_key_waits_behind_it(
        self, broker: Broker, declared: str
    ) -> None:
        items = [(declared, _message(n, "resident-a" if n % 2 else f"other-{n}")) for n in range(1, 13)]
        await broker.publish_many(items)
        handler = BatchRecorder(answer=lambda d: not (d.message_id == "m-3" and d.delivery_count == 1))
        consumer = await broker.consume_batches(declared, handler, concurrency=2, batch_size=8, prefetch=16)
        await _eventually(lambda: len(handler.acked) >= 12)
        await consumer.cancel()
        assert sorted(handler.acked_ids()) == sorted(f"m-{n}" for n in range(1, 13))
        resident = [int(d.headers["sequence"]) for d in handler.acked if d.key == "resident-a"]
        assert resident == [1, 3, 5, 7, 9, 11]  # m-3 came back before m-5 went
        again = [d for batch in handler.batches for d in batch if d.message_id == "m-3"]
        assert [(d.redelivered, d.delivery_count) for d in again] == [(False, 1), (True, 2)]

    async def test_a_batch_handler_that_raises_gets_the_whole_batch_again(
        self, broker: Broker, declared: str
    ) -> None:
        await broker.publish_many([(declared, _message(n, f"r{n}")) for n in range(6)])
        failed: list[int] = []

        async def handler(batch: Sequence[Delivery]) -> list[bool]:
            if not failed:
                failed.append(len(batch))
                raise RuntimeError("the stage crashed on purpose")
            recorder.acked.extend(batch)
            return [True] * len(batch)

        recorder = BatchRecorder()
        consumer = await broker.consume_batches(declared, handler, concurrency=1, batch_size=6, linger=0.05)
        await _eventually(lambda: len(recorder.acked) >= 6)
        await consumer.cancel()
        assert sorted(recorder.acked_ids()) == sorted(f"m-{n}" for n in range(6))
        redelivered = sum(d.redelivered for d in recorder.acked)
        assert redelivered == failed[0] >= 1  # exactly those of the failed batch came back


async def _eventually(check: Callable[[], bool], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(0.02)
