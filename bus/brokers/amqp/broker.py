"""`AmqpBroker`: the broker contract (base.py) on RabbitMQ, assembled from this package's parts.

connection.py opens the connection (cluster failover), topology.py declares, publishing.py
publishes with confirms, consuming.py consumes and settles, waiting.py moves due retries back
(a `Mover` beside each consumer), errors.py maps every driver error, fastpath.py (optional)
writes publishes and acks past aiormq's public API.

`stats`: `ready` and `consumers` from a passive queue declare; `in_flight` counts the
unsettled deliveries of this process only (the management plugin, which knows all of them,
is not assumed to be enabled). RabbitMQ 3.10 reports 0 consumers for a quorum queue in
declare-ok, so this process's own consumers are the floor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from ssl import SSLContext
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from bus.brokers.amqp import consuming, topology
from bus.brokers.amqp.connection import Link
from bus.brokers.amqp.errors import mapped, safe_url
from bus.brokers.amqp.expedite import delay_queue_names, move_delayed
from bus.brokers.amqp.publishing import Publisher
from bus.brokers.amqp.waiting import Mover, ask_to_release, moved_headers
from bus.brokers.base import Broker, BrokerDescription, Delivery, OutgoingMessage, QueueDescription, QueueStats
from bus.errors import BrokerError, BrokerUnavailable

__all__ = ["AmqpBroker"]


class AmqpBroker(Broker):
    """RabbitMQ at `url` (amqp:// or amqps://; several nodes: ``amqp://u:p@h1:p1,h2:p2/vhost``).

    `fast_path`: publish and ack through fastpath.py when the installed aiormq allows it
    (`[bus] amqp_fast_path`); False takes aio-pika's and aiormq's public API only."""

    name = "amqp"

    def __init__(
        self,
        url: str,
        *,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        settle_timeout: float = 5.0,
        ssl_context: SSLContext | None = None,
        shards: int = 1,
        fast_path: bool = True,
    ) -> None:
        if not 1 <= shards <= 64:
            raise ValueError(f"shards must be 1..64, got {shards}")
        self.url = url
        self.shards = shards
        self.fast_path = fast_path
        self.publish_timeout = publish_timeout
        self.settle_timeout = settle_timeout
        self._link = Link(url, name="renkei", timeout=connect_timeout, ssl_context=ssl_context)
        self._publisher = self._new_publisher()
        self._subscriptions: set[consuming.Subscription] = set()
        self._movers: dict[str, list[Mover]] = {}  # a mover of each consumed queue's wait queue
        self._delayed: set[str] = set()  # queues whose wait queue this process declared (expect_delays)
        self._consumed: dict[str, list[Callable[[], Awaitable[None]]]] = {}  # each consumer's stop
        self._movers_of: dict[Callable[[], Awaitable[None]], Mover] = {}
        #: the shards this process prefers (topology.ShardGroup); None: every shard at once
        self.shard_group: topology.ShardGroup | None = None
        self.standby_after = 10.0  # > the start-up skew of processes started together

    def _new_publisher(self) -> Publisher:
        return Publisher(self._link, shards=self.shards, fast_path=self.fast_path, timeout=self.publish_timeout,
                         declared_wait=self._wake_movers)

    def _wake_movers(self, queue: str) -> None:
        """The publisher declared `queue`'s wait queue: consumers of `queue` here get a mover."""
        self._delayed.add(queue)
        for stop in self._consumed.get(queue, ()):
            if stop not in self._movers_of:
                self._movers_of[stop] = self._start_mover(queue)

    def _start_mover(self, queue: str) -> Mover:
        # its retries come back when due
        mover = Mover(self.connection(), queue, shards=self.shards, timeout=self.publish_timeout)
        mover.start()
        self._movers.setdefault(queue, []).append(mover)
        return mover

    async def expect_delays(self, queue: str) -> None:
        await self._publisher.wait_queue(queue)

    async def connect(self, *, brief: bool = False) -> None:
        """Connect (`brief`: for one look, as `describe` unconnected does: connection.py)."""
        if self._publisher.channel is not None:
            return
        await self._link.open(brief=brief)
        await self._publisher.open()

    async def close(self) -> None:
        self._publisher = self._new_publisher()
        for sub in list(self._subscriptions):
            sub.stopping = True
        self._subscriptions.clear()
        movers = [m for ms in self._movers.values() for m in ms]
        self._movers.clear()
        self._movers_of.clear()
        self._consumed.clear()
        self._delayed.clear()
        await asyncio.gather(*(m.stop() for m in movers))
        await self._link.close()

    async def declare(self, queue: str) -> None:
        with mapped(f"declaring queue {queue!r}"):
            async with self.admin_channel() as channel:
                await topology.declare(channel, queue, shards=self.shards)
        if self.shards > 1:
            self._publisher.exchanges.add(queue)

    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]], *, delay: float = 0.0) -> None:
        await self._publisher.publish_many(items, delay=delay)

    async def expedite(self, queue: str, waits: Sequence[float] = ()) -> list[dict[str, Any]]:
        """The wait queue's movers release all they hold (waiting.py); the delay queues of
        before December 2026 (`waits`: the tiers they were named by) are emptied (expedite.py)."""
        moved = await ask_to_release(self.connection(), queue, shards=self.shards)
        legacy = await move_delayed(self, queue, delay_queue_names(queue, waits))
        return [*moved, *(moved_headers(h) for h in legacy)]

    def delay_arguments(self, queue: str, millis: int) -> dict[str, Any]:
        """The arguments of the delay queue `<queue>.delay.<millis>ms`."""
        return topology.delay_arguments(queue, millis, shards=self.shards)

    def physical_queues(self, queue: str) -> list[str]:
        """The RabbitMQ queues of the logical `queue` (itself, or its shards)."""
        return topology.shard_names(queue, self.shards)

    async def stats(self, queue: str) -> QueueStats:
        ready = consumers = 0
        with mapped(f"reading the stats of queue {queue!r}"):
            async with self.admin_channel() as channel:
                for name in self.physical_queues(queue):
                    result = (await channel.declare_queue(name, passive=True)).declaration_result
                    ready += result.message_count or 0
                    consumers = max(consumers, result.consumer_count or 0)  # per shard: active + standbys
        mine = [s for s in self._subscriptions if s.queue_name == queue]
        in_flight = sum(len(s.unsettled) for s in mine)
        return QueueStats(queue, ready, in_flight, max(consumers, len(mine) // max(1, self.shards)))

    async def describe(self, queues: Sequence[str]) -> BrokerDescription:
        """From passive declares (`stats`), on this broker's connection or, unconnected, on one
        opened for the purpose. Delayed is None: a wait queue's retries are held unacknowledged
        by a mover (waiting.py), which only the management API counts. In flight is this
        instance's unsettled count where its own subscriptions are every consumer of the queue,
        None where others consume (RabbitMQ tells their unacknowledged count only through its
        management API)."""
        opened = self._publisher.channel is None
        found: dict[str, QueueDescription] = {}
        try:
            if opened:
                await self.connect(brief=True)
            for q in queues:
                try:
                    stats = await self.stats(q)
                except BrokerUnavailable:
                    raise
                except BrokerError:  # the passive declare failed: no such queue
                    found[q] = QueueDescription(q, False, 0, None, 0, 0)
                    continue
                own = len([s for s in self._subscriptions if s.queue_name == q]) // self.shards
                in_flight = stats.in_flight if stats.consumers <= own else None
                found[q] = QueueDescription(q, True, stats.ready, None, in_flight, stats.consumers)
        except BrokerUnavailable as exc:
            return BrokerDescription(self.name, safe_url(self.url), False,
                                     {q: QueueDescription.unknown(q) for q in queues}, str(exc))
        finally:
            if opened:
                with contextlib.suppress(BrokerError):
                    await self.close()
        return BrokerDescription(self.name, safe_url(self.url), True, found)

    async def _start_consumer(
        self, queue: str, on_delivery: Callable[[Delivery], None], prefetch: int
    ) -> Callable[[], Awaitable[None]]:
        """Consume `queue` (consuming.py) with, when it gets delayed messages, a mover of its wait
        queue (waiting.py: started now, or when this process first delays a message to it)."""
        stop_consumer = await consuming.start_consumer(
            self.connection(), queue, on_delivery, prefetch, shards=self.shards, subscriptions=self._subscriptions,
            group=self.shard_group, standby_after=self.standby_after)

        async def stop() -> None:
            self._consumed.get(queue, []).remove(stop)
            mover = self._movers_of.pop(stop, None)
            if mover is not None:
                self._movers[queue].remove(mover)
                await mover.stop()
            await stop_consumer()

        self._consumed.setdefault(queue, []).append(stop)
        if queue in self._delayed:
            self._movers_of[stop] = self._start_mover(queue)
        return stop

    async def _settle(self, delivery: Delivery, ok: bool) -> None:
        await consuming.settle(delivery, ok, fast_path=self.fast_path, within=self.settle_timeout)

    async def _fence(self, delivery: Delivery) -> None:
        await consuming.fence(delivery)

    def connection(self) -> AbstractRobustConnection:
        """The open connection (BrokerUnavailable before `connect()` or after `close()`)."""
        return self._link.connection()

    def admin_channel(self, *, confirms: bool = False) -> AbstractAsyncContextManager[AbstractChannel]:
        """A short-lived channel for declares (`async with`): a failed one closes it, not the publisher."""
        return self._link.admin_channel(confirms=confirms)
