"""The dispatcher's linger (`Broker.consume_batches(linger=...)`, `[bus] batch_linger_ms`) waits
for a batch to fill only under a backlog: a change that arrives while nothing is running is
handed out at once, whatever the linger (issue 10: the wait added latency to an idle bus)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bus.brokers.keyed import _KeyedDispatcher
from bus.brokers.messages import Delivery

LONG = 30.0  # a linger no test waits out: a batch that comes before it did not wait for it


class Settling:
    """The broker side of the dispatcher: records what was settled."""

    _holds_keys = True

    def __init__(self) -> None:
        self.settled: list[tuple[str, bool]] = []

    async def _settle_many(self, settles: Sequence[tuple[Delivery, bool]]) -> None:
        self.settled += [(d.message_id, ok) for d, ok in settles]

    async def _fence(self, delivery: Delivery) -> None:
        return None


class Gated:
    """A batch handler that records each batch and holds the first until `release` is set."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()

    async def __call__(self, batch: Sequence[Delivery]) -> list[bool]:
        self.batches.append([d.message_id for d in batch])
        self.arrived.set()
        if len(self.batches) == 1:
            await self.release.wait()
        return [True] * len(batch)


def delivery(n: int) -> Delivery:
    return Delivery(b"x", f"m-{n}", f"resident-{n}", {})


async def batches_seen(handler: Gated, n: int) -> None:
    while len(handler.batches) < n:
        handler.arrived.clear()
        await asyncio.wait_for(handler.arrived.wait(), 5)


async def test_a_change_that_finds_nothing_running_is_handed_out_at_once_whatever_the_linger() -> None:
    broker, handler = Settling(), Gated()
    handler.release.set()
    dispatcher = _KeyedDispatcher(broker, handler, concurrency=4, batch_size=64, linger=LONG)
    dispatcher.submit(delivery(1))
    await batches_seen(handler, 1)  # within seconds, not after the 30 s linger
    assert handler.batches == [["m-1"]]
    dispatcher.close()
    await asyncio.wait_for(dispatcher.drain(), 5)
    assert broker.settled == [("m-1", True)]


async def test_under_a_backlog_the_changes_wait_for_the_running_batch_and_go_together() -> None:
    broker, handler = Settling(), Gated()
    dispatcher = _KeyedDispatcher(broker, handler, concurrency=4, batch_size=64, linger=LONG)
    dispatcher.submit(delivery(1))
    await batches_seen(handler, 1)
    for n in (2, 3, 4):  # arrive while the first batch runs: they linger instead of going one by one
        dispatcher.submit(delivery(n))
        await asyncio.sleep(0.01)
    assert handler.batches == [["m-1"]]
    handler.release.set()  # the running batch ends: nothing runs, so what waited goes, as one batch
    await batches_seen(handler, 2)
    assert handler.batches == [["m-1"], ["m-2", "m-3", "m-4"]]
    dispatcher.close()
    await asyncio.wait_for(dispatcher.drain(), 5)
    assert sorted(broker.settled) == [(f"m-{n}", True) for n in (1, 2, 3, 4)]


async def test_a_batch_that_fills_while_another_runs_goes_without_waiting_out_the_linger() -> None:
    broker, handler = Settling(), Gated()
    dispatcher = _KeyedDispatcher(broker, handler, concurrency=4, batch_size=3, linger=LONG)
    dispatcher.submit(delivery(1))
    await batches_seen(handler, 1)
    for n in (2, 3, 4):
        dispatcher.submit(delivery(n))
    await batches_seen(handler, 2)  # the first batch still runs
    assert handler.batches == [["m-1"], ["m-2", "m-3", "m-4"]] and not handler.release.is_set()
    handler.release.set()
    dispatcher.close()
    await asyncio.wait_for(dispatcher.drain(), 5)
    assert len(broker.settled) == 4
