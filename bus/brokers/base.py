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
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from bus.brokers.keyed import _KeyedDispatcher, _one_by_one
from bus.brokers.messages import BatchHandler, Delivery, Handler, OutgoingMessage

__all__ = [
    "BatchHandler", "Broker", "BrokerDescription", "Consumer", "Delivery", "Handler", "OutgoingMessage",
    "QueueDescription", "QueueStats",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    ready: int
    in_flight: int
    consumers: int


@dataclass(frozen=True, slots=True)
class QueueDescription:
    """One queue as the broker sees it, for `renkei status`. None: this backend cannot tell
    (RabbitMQ: a delayed message waits in a wait queue, held unacknowledged by a mover, which
    only the management API counts; in flight only for the consumers of this broker instance)
    or the broker could not be read."""

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
        at the tail, moved there from its wait queue), not when it was published: keeping a resident's
        order across a retry is the deliverer's job (its parked set), not the broker's."""

    @abstractmethod
    async def stats(self, queue: str) -> QueueStats: ...

    async def backlog(self) -> int | None:
        """Every message the broker holds (ready, waiting behind its key, in flight, delayed), or
        None for a broker that does not count them: what a bulk file keeps pace with
        (adapters.sources.ingest). RabbitMQ answers None: its queues are made to hold a backlog."""
        return None

    async def drained(self, queues: Sequence[str]) -> bool:
        """True when none of `queues` holds a message ready or in flight, as `stats` counts them
        (the embedded broker counts delayed messages as ready; RabbitMQ's wait in wait queues):
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

    async def expect_delays(self, queue: str) -> None:
        """`queue` gets messages published with a delay (a deliverer's retries to its own queue):
        a broker that keeps them apart readies their way back now, before this process consumes
        `queue`, so that those another process left waiting come back even before this one
        delays any (RabbitMQ: the wait queue and its mover). Idempotent; nothing by default."""
        return None

    async def expedite(self, queue: str, waits: Sequence[float] = ()) -> list[dict[str, Any]]:
        """Make every message published to `queue` with a delay due now, in order (an operator's
        `renkei retry now`, once a destination is back); return the headers of each one moved.
        `waits` are the delays they may have been published with: RabbitMQ's delay queues of
        before December 2026, one per delay, are named by them (no one lists queues over AMQP)."""
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
        ready, up to `batch_size`; when it has fewer and another batch is running (a backlog) it
        waits up to `linger` seconds for more, until that batch ends or a batch fills. With
        nothing running it never waits: under load the batches grow, a lone message goes at once."""
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
