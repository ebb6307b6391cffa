"""The broker contract: six primitives every backend fills in.

A backend (bus/brokers/embedded.py, bus/brokers/amqp.py) implements `connect`, `close`,
`declare`, `publish_many`, `_start_consumer` and `stats`. Everything else — per-key ordered
concurrent dispatch, ack on return / requeue on exception — lives here, once.

Semantics every backend guarantees (tests/contract/ proves them on each):
- `publish`/`publish_many` return only when every message is durable (fsync'd row,
  publisher confirm); otherwise they raise `PublishNotConfirmed`. Publishing to a queue
  that was never declared raises `PublishNotConfirmed` too (mandatory routing).
- A delivery whose handler returns is acked; one whose handler raises is requeued, and
  comes back with `redelivered=True`. A consumer that dies without acking (kill -9)
  leaves its deliveries to be redelivered.
- Messages of one `key` reach the handler in publish order, one at a time; different keys
  run concurrently up to `concurrency`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Broker", "Consumer", "Delivery", "Handler", "OutgoingMessage", "QueueStats"]


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


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    ready: int
    in_flight: int
    consumers: int


class Consumer:
    """A running subscription; `cancel()` stops it after in-flight handlers finish."""

    def __init__(self, cancel: Callable[[], Awaitable[None]]) -> None:
        self._cancel = cancel

    async def cancel(self) -> None:
        await self._cancel()


class Broker(ABC):
    """A durable queueing backend."""

    name: str = "abstract"

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def declare(self, queue: str) -> None:
        """Create a durable queue if it does not exist (idempotent)."""

    @abstractmethod
    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]]) -> None:
        """Publish to (queue, message) pairs; return when all are durable, else raise."""

    @abstractmethod
    async def stats(self, queue: str) -> QueueStats: ...

    @abstractmethod
    async def _start_consumer(
        self, queue: str, on_delivery: Callable[[Delivery], None], prefetch: int
    ) -> Callable[[], Awaitable[None]]:
        """Start pushing deliveries of `queue` into `on_delivery` (in queue order, at most
        `prefetch` unsettled). Return an async stop function."""

    @abstractmethod
    async def _settle(self, delivery: Delivery, ok: bool) -> None:
        """Ack (ok) or requeue (not ok) one delivery."""

    async def publish(self, queue: str, message: OutgoingMessage) -> None:
        await self.publish_many([(queue, message)])

    async def consume(
        self, queue: str, handler: Handler, *, concurrency: int = 16, prefetch: int | None = None
    ) -> Consumer:
        """Run `handler` on each delivery: per key in order, keys concurrently."""
        dispatcher = _KeyedDispatcher(self, handler, concurrency)
        stop = await self._start_consumer(queue, dispatcher.submit, prefetch or concurrency * 2)

        async def cancel() -> None:
            await stop()
            await dispatcher.drain()

        return Consumer(cancel)


class _KeyedDispatcher:
    """Runs deliveries concurrently across keys, strictly in order within a key."""

    def __init__(self, broker: Broker, handler: Handler, concurrency: int) -> None:
        self._broker = broker
        self._handler = handler
        self._slots = asyncio.Semaphore(concurrency)
        self._chains: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, delivery: Delivery) -> None:
        previous = self._chains.get(delivery.key)
        task = asyncio.get_running_loop().create_task(self._run(delivery, previous))
        self._chains[delivery.key] = task
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(delivery.key, t))

    def _done(self, key: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._chains.get(key) is task:
            del self._chains[key]

    async def _run(self, delivery: Delivery, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        async with self._slots:
            try:
                await self._handler(delivery)
            except asyncio.CancelledError:
                await self._broker._settle(delivery, ok=False)
                raise
            except Exception:  # the handler decides; an escaped error means "try again"
                await self._broker._settle(delivery, ok=False)
            else:
                await self._broker._settle(delivery, ok=True)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
