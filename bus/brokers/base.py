"""The broker contract: seven primitives every backend fills in.

A backend (bus/brokers/embedded.py, the package bus/brokers/amqp/) implements `connect`, `close`,
`declare`, `publish_many`, `stats`, `describe`, `_start_consumer` and `_settle` (and may
override `_fence`). Everything else — per-key ordered concurrent dispatch, ack on return / requeue
on exception, orderly cancellation — lives here, once.

Semantics every backend guarantees (tests/contract/ proves them on each):
- `publish`/`publish_many` return only when every message is durable (fsync'd row,
  publisher confirm); otherwise they raise `PublishNotConfirmed` (nacked, unroutable, not
  confirmed in time) or `BrokerUnavailable` (no connection) — either way, not accepted.
  Publishing to a queue that was never declared raises `PublishNotConfirmed` too
  (mandatory routing). A failed `publish_many` may have stored some of its messages
  (RabbitMQ) or none (embedded): publish again; consumers see duplicates at worst.
- Header values are JSON types (str, int, float, bool, None, lists and dicts of them).
- A delivery whose handler returns is acked; one whose handler raises is requeued, and
  comes back with `redelivered=True`. A consumer that dies without acking (kill -9)
  leaves its deliveries to be redelivered.
- Messages of one `key` reach the handler in publish order, one at a time; different keys
  run concurrently up to `concurrency`. A requeued message is not overtaken by the later
  messages of its key that this consumer already holds: they are requeued behind it.
- `describe(queues)` never raises for a broker it cannot reach or read: it says so
  (`reachable=False`, `problem`) and leaves every figure None. It works on an unconnected
  broker and writes nothing (status reads a running bus from outside).
- `Consumer.cancel()` lets running handlers finish (ack or requeue as usual), requeues the
  deliveries whose handler has not started, and returns when nothing is left unsettled.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

__all__ = [
    "BatchHandler", "Broker", "BrokerDescription", "Consumer", "Delivery", "Handler", "OutgoingMessage",
    "QueueDescription", "QueueStats",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    body: bytes
    message_id: str
    key: str  # ordering key (the envelope subject)
    headers: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Delivery:
    """One message handed to a handler. The broker acks or requeues it; handlers don't."""

    body: bytes
    message_id: str
    key: str
    headers: dict[str, Any]
    redelivered: bool = False
    delivery_count: int = 1
    token: Any = None  # backend's handle (delivery tag, row id)


Handler = Callable[[Delivery], Awaitable[None]]
#: a batch of deliveries (at most one per key) in, one answer each out: True acks, False requeues
BatchHandler = Callable[[Sequence[Delivery]], Awaitable[Sequence[bool]]]


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    ready: int
    in_flight: int
    consumers: int


@dataclass(frozen=True, slots=True)
class QueueDescription:
    """One queue as the broker sees it, for `renkei status`. None: this backend cannot tell
    (RabbitMQ: delayed messages wait in per-delay queues it cannot list; in flight only for
    the consumers of this broker instance) or the broker could not be read."""

    queue: str
    declared: bool | None
    ready: int | None  # deliverable now (or as soon as the key's earlier message settles)
    delayed: int | None  # published with a delay (a retry tier) that has not passed yet
    in_flight: int | None  # handed to a consumer, not yet settled
    consumers: int | None  # live consumers (on RabbitMQ: per shard, the active and standbys)

    @classmethod
    def unknown(cls, queue: str) -> QueueDescription:
        return cls(queue, None, None, None, None, None)


@dataclass(frozen=True, slots=True)
class BrokerDescription:
    """What `Broker.describe` saw: where the broker is (a path, or a URL without its
    password), whether it could be read, and each asked-for queue."""

    backend: str
    where: str
    reachable: bool
    queues: dict[str, QueueDescription]
    problem: str | None = None  # why it was not reachable, or what it lacks (no broker file yet)


class Consumer:
    """A running subscription; `cancel()` stops it after in-flight handlers finish."""

    def __init__(self, cancel: Callable[[], Awaitable[None]]) -> None:
        self._cancel = cancel
        self._cancelled: asyncio.Task[None] | None = None

    async def cancel(self) -> None:
        """Idempotent; concurrent callers all wait for the same cancellation."""
        if self._cancelled is None:
            self._cancelled = asyncio.ensure_future(self._cancel())
        await asyncio.shield(self._cancelled)


class Broker(ABC):
    """A durable queueing backend."""

    name: str = "abstract"
    #: True when the backend itself never hands out a key's next message while an earlier one
    #: is unsettled (the embedded store). Otherwise the dispatcher guards order after a
    #: requeue (see `_fence`).
    _holds_keys: bool = False

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def declare(self, queue: str) -> None:
        """Create a durable queue if it does not exist (idempotent)."""

    @abstractmethod
    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]], *, delay: float = 0.0) -> None:
        """Publish to (queue, message) pairs; return when all are durable, else raise.

        With `delay` (seconds; the retry tiers) no message is delivered before that time.
        A delayed message takes its place in its key's order when it becomes due (RabbitMQ:
        at the tail, after a delay queue), not when it was published: keeping a resident's
        order across a retry is the deliverer's job (its parked set), not the broker's."""

    @abstractmethod
    async def stats(self, queue: str) -> QueueStats: ...

    async def drained(self, queues: Sequence[str]) -> bool:
        """True when none of `queues` holds a message ready or in flight, as `stats` counts them
        (the embedded broker counts delayed messages as ready; RabbitMQ's wait in delay queues):
        what an idle wait asks many times a second. This default counts with `stats`; a broker
        whose count costs as much as its backlog answers without counting."""
        for queue in queues:
            stats = await self.stats(queue)
            if stats.ready or stats.in_flight:
                return False
        return True

    @abstractmethod
    async def describe(self, queues: Sequence[str]) -> BrokerDescription:
        """A read-only snapshot of `queues` (see `QueueDescription`), connected or not;
        an unreachable or unreadable broker gives `reachable=False`, not an exception."""

    @abstractmethod
    async def _start_consumer(
        self, queue: str, on_delivery: Callable[[Delivery], None], prefetch: int
    ) -> Callable[[], Awaitable[None]]:
        """Start pushing deliveries of `queue` into `on_delivery` (in queue order, at most
        `prefetch` unsettled). Return an async stop function: it stops new deliveries, waits
        until every delivery handed out has been settled (the dispatcher keeps settling
        meanwhile), then releases what the subscription holds."""

    @abstractmethod
    async def _settle(self, delivery: Delivery, ok: bool) -> None:
        """Ack (ok) or requeue (not ok) one delivery. A delivery the backend can no longer
        settle (connection lost, lease reclaimed) is logged and left: it will be redelivered."""

    async def expedite(self, queue: str, waits: Sequence[float] = ()) -> list[dict[str, Any]]:
        """Make every message published to `queue` with a delay due now, in order (an operator's
        `renkei retry now`, once a destination is back); return the headers of each one moved.
        `waits` are the delays they may have been published with: RabbitMQ keeps one delay queue
        per delay and has no way to list them (the embedded broker needs none)."""
        raise NotImplementedError(f"the {self.name} broker cannot make delayed messages due now")

    async def _fence(self, delivery: Delivery) -> None:
        """Return once every delivery the broker sent this consumer before it processed the
        requeue of `delivery` has arrived (AMQP: a channel round trip after the nack).
        The default suits a backend whose deliveries arrive the moment they are handed out."""
        return None

    async def _settle_many(self, settles: Sequence[tuple[Delivery, bool]]) -> None:
        """Ack or requeue several deliveries (a batch's). This default settles them one by one,
        concurrently; a backend that can do it in one round trip (the embedded broker: one
        transaction) overrides it. Each delivery is settled or, failing, logged and left, as
        `_settle` does: a failure of one never stops the others."""
        if len(settles) == 1:
            await self._settle(*settles[0])
            return
        results = await asyncio.gather(*(self._settle(d, ok) for d, ok in settles), return_exceptions=True)
        for (delivery, ok), result in zip(settles, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("could not settle a delivery", queue_key=delivery.key,
                            message_id=delivery.message_id, ok=ok, error=repr(result))

    async def publish(self, queue: str, message: OutgoingMessage, *, delay: float = 0.0) -> None:
        await self.publish_many([(queue, message)], delay=delay)

    async def consume(
        self, queue: str, handler: Handler, *, concurrency: int = 16, prefetch: int | None = None
    ) -> Consumer:
        """Run `handler` on each delivery: per key in order, keys concurrently."""
        return await self.consume_batches(queue, _one_by_one(handler), concurrency=concurrency, batch_size=1,
                                          prefetch=prefetch)

    async def consume_batches(
        self, queue: str, handler: BatchHandler, *, concurrency: int = 16, batch_size: int = 64,
        linger: float = 0.0, prefetch: int | None = None,
    ) -> Consumer:
        """Run `handler` on batches of up to `batch_size` deliveries, at most one of each key per
        batch (so a key's messages still run one at a time, in order); up to `concurrency`
        batches at once. `handler` answers one bool per delivery, in order: True acks it, False
        requeues it; raising requeues the whole batch. A free worker takes every key that is
        ready, up to `batch_size` (waiting `linger` seconds first for more when it has fewer):
        under load the batches grow, a lone message goes at once."""
        if batch_size < 1 or linger < 0:
            raise ValueError(f"batch_size must be >= 1 and linger >= 0, got {batch_size}, {linger}")
        dispatcher = _KeyedDispatcher(self, handler, concurrency, batch_size, linger)
        prefetch = prefetch or max(concurrency * 2, batch_size * 2)
        try:
            stop = await self._start_consumer(queue, dispatcher.submit, prefetch)
        except BaseException:  # nothing was consumed: stop the workers ("Task was destroyed but it is pending!")
            dispatcher.close()
            await dispatcher.drain()
            raise

        async def cancel() -> None:
            dispatcher.close()
            try:
                await stop()
            finally:
                await dispatcher.drain()

        return Consumer(cancel)


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
    takes what is ready, and wakes the next if it left some."""

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

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._ready:
                waiter = loop.create_future()
                self._idle.append(waiter)
                await waiter
                continue
            if self._linger and len(self._ready) < self._batch_size and not self._closing:
                await asyncio.sleep(self._linger)
                if not self._ready:
                    continue
            keys = [self._ready.popleft() for _ in range(min(self._batch_size, len(self._ready)))]
            if self._ready:
                self._wake_one()
            batch = [self._keys[key][0] for key in keys]
            try:
                await self._run(batch)
            finally:
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
