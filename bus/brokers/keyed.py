"""The dispatch behind `Broker.consume` and `Broker.consume_batches` (bus/brokers/base.py):
deliveries in batches, concurrently across keys, strictly in order within a key, settled by
the broker — the same for every backend."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from bus.brokers.messages import BatchHandler, Delivery, Handler

log = structlog.get_logger("bus.brokers.base")


class Broker(Protocol):
    """What the dispatch needs of its broker (bus.brokers.base.Broker)."""

    _holds_keys: bool

    async def _settle_many(self, settles: Sequence[tuple[Delivery, bool]]) -> None: ...

    async def _fence(self, delivery: Delivery) -> None: ...


def _one_by_one(handler: Handler) -> BatchHandler:
    """A handler of one delivery as a handler of batches of one: raising means requeue."""

    async def run(batch: Sequence[Delivery]) -> list[bool]:
        [delivery] = batch
        try:
            await handler(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the handler decides; an escaped error means "try again"
            # the type only: an exception's text may quote the message (personal data)
            log.warning("handler failed; requeued", message_id=delivery.message_id, error=type(exc).__name__,
                        delivery_count=delivery.delivery_count)
            return [False]
        return [True]

    return run


@dataclass(slots=True)
class _Block:
    """A key whose message was requeued: later messages of it that arrived before the broker
    put the requeued one back (arrival seq <= until_seq) are requeued behind it."""

    message_id: str
    until_seq: float = float("inf")


class _KeyedDispatcher:
    """Runs deliveries in batches, concurrently across keys, strictly in order within a key.

    A deque per key holds its deliveries in arrival order; a key with work and none running
    is in `ready` (arrival order) at most once; `concurrency` worker tasks each take up to
    `batch_size` ready keys, run the first delivery of each as one batch, and put the keys back
    at the end if more are waiting (fair across keys). One idle worker is woken at a time: it
    takes what is ready, and wakes the next if it left some.

    With a `linger`, a worker that finds fewer than `batch_size` keys ready waits up to that long
    for more, but only while another batch is running (a backlog: the handler is busy anyway, and
    the wait makes fewer, fuller batches); with none running it takes what is ready at once, so a
    bus that is not busy adds no wait to a change. A batch that fills ends the wait early."""

    def __init__(self, broker: Broker, handler: BatchHandler, concurrency: int, batch_size: int = 1,
                 linger: float = 0.0) -> None:
        self._broker = broker
        self._handler = handler
        self._batch_size = batch_size
        self._linger = linger
        self._keys: dict[str, collections.deque[tuple[Delivery, int]]] = {}
        self._ready: collections.deque[str] = collections.deque()
        self._idle: collections.deque[asyncio.Future[None]] = collections.deque()
        self._blocks: dict[str, _Block] = {}
        self._arrivals = itertools.count(1)
        self._last_seq = 0
        self._pending = 0  # submitted, not yet settled
        self._running = 0  # batches taken and not yet settled
        self._full = asyncio.Event()  # a batch's worth of keys is ready: a lingering worker goes
        self._empty = asyncio.Event()
        self._empty.set()
        self._closing = False
        self._helpers: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work()) for _ in range(max(1, concurrency))]

    def submit(self, delivery: Delivery) -> None:
        self._last_seq = seq = next(self._arrivals)
        self._pending += 1
        self._empty.clear()
        waiting = self._keys.get(delivery.key)
        if waiting is None:
            self._keys[delivery.key] = collections.deque([(delivery, seq)])
            self._ready.append(delivery.key)
            self._wake_one()
            if len(self._ready) >= self._batch_size:
                self._full.set()
        else:
            waiting.append((delivery, seq))

    def _wake_one(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """From now on, deliveries whose handler has not started are requeued."""
        self._closing = True
        self._full.set()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._ready:
                waiter = loop.create_future()
                self._idle.append(waiter)
                await waiter
                continue
            if self._linger and self._running and len(self._ready) < self._batch_size and not self._closing:
                await self._fill()
                if not self._ready:
                    continue
            keys = [self._ready.popleft() for _ in range(min(self._batch_size, len(self._ready)))]
            if self._ready:
                self._wake_one()
            batch = [self._keys[key][0] for key in keys]
            self._running += 1
            try:
                await self._run(batch)
            finally:
                self._running -= 1
                if not self._running:
                    self._full.set()  # nothing runs now: a lingering worker takes what is ready
                for key in keys:
                    waiting = self._keys[key]
                    waiting.popleft()
                    if waiting:
                        self._ready.append(key)
                    else:
                        del self._keys[key]
                if self._ready:
                    self._wake_one()
                self._pending -= len(batch)
                if not self._pending:
                    self._empty.set()

    async def _fill(self) -> None:
        """Wait up to `linger` for a batch's worth of keys to be ready (see the class docstring)."""
        self._full.clear()
        if len(self._ready) >= self._batch_size or self._closing:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), self._linger)

    async def _run(self, batch: list[tuple[Delivery, int]]) -> None:
        go: list[Delivery] = []
        back: list[Delivery] = []  # requeued without running: closing, or behind a requeued one
        for delivery, seq in batch:
            (back if self._closing or self._held_back(delivery, seq) else go).append(delivery)
        results: Sequence[bool] = ()
        if go:
            try:
                results = await self._handler(go)
            except asyncio.CancelledError:
                await self._settle([], go + back, [])
                raise
            except Exception as exc:  # an escaped error means "try again", for the whole batch
                log.warning("batch handler failed; requeued", messages=len(go), error=type(exc).__name__)
                results = [False] * len(go)
            if len(results) != len(go):
                log.error("batch handler answered the wrong number of results; requeued",
                          messages=len(go), results=len(results))
                results = [False] * len(go)
        acked = [d for d, ok in zip(go, results, strict=True) if ok]
        failed = [d for d, ok in zip(go, results, strict=True) if not ok]
        await self._settle(acked, back, failed)

    def _held_back(self, delivery: Delivery, seq: int) -> bool:
        block = self._blocks.get(delivery.key)
        if block is None:
            return False
        if delivery.message_id == block.message_id or seq > block.until_seq:
            del self._blocks[delivery.key]  # the requeued one is back, or the rest came after it
            return False
        return True

    async def _settle(self, acked: list[Delivery], back: list[Delivery], failed: list[Delivery]) -> None:
        """Ack `acked`, requeue `back` and `failed` — each failed one fencing its key (see `_lift`)."""
        guard = not self._broker._holds_keys
        blocks = [(d, _Block(d.message_id)) for d in failed] if guard else []
        for delivery, block in blocks:
            self._blocks[delivery.key] = block
        settles = [(d, True) for d in acked] + [(d, False) for d in (*back, *failed)]
        if settles:
            try:
                await self._broker._settle_many(settles)
            except Exception as exc:  # they stay unsettled at the broker and come back
                log.warning("could not settle deliveries", messages=len(settles), error=repr(exc))
        for delivery, block in blocks:
            task = asyncio.get_running_loop().create_task(self._lift(delivery, block))
            self._helpers.add(task)
            task.add_done_callback(self._helpers.discard)

    async def _lift(self, delivery: Delivery, block: _Block) -> None:
        try:
            await self._broker._fence(delivery)
        except Exception as exc:  # a lost channel also ends what it could still deliver
            log.debug("broker fence failed", error=repr(exc))
        block.until_seq = self._last_seq

    async def drain(self) -> None:
        """Wait until every submitted delivery is settled, then stop the workers."""
        while self._pending:
            await self._empty.wait()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, *self._helpers, return_exceptions=True)
