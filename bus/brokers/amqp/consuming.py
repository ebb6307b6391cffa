"""Consuming: a channel per consumer (per shard), `basic.qos(prefetch)`, settled one by one.

- Cancelling a consumer cancels it at the broker, waits for the dispatcher to settle what it
  holds, then closes the channel (whatever is still unacked goes back to the queue).
- Order: RabbitMQ hands out a key's next message while an earlier one is unacked, so the
  dispatcher guards order (base.py): after a requeue, the later messages of that key this
  consumer already holds are requeued behind it until a `basic.qos` round trip (`fence`)
  proves nothing older is still on the wire. Across several consumers of one queue RabbitMQ
  keeps no per-key order: every queue has a single active consumer (topology.py).
- An ack takes the fast path (`fastpath.ack_now`) when the broker has it on, else aio-pika's
  `message.ack()`, bounded: after a lost connection, aiormq waits forever to queue the ack
  of a delivery of the old channel (the dead connection's frame queue is full and nobody
  drains it), which would hang the dispatcher's workers and `cancel()`. Shielded: on a
  connection that is only slow (blocked by an alarm) the frame still goes out after the timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from bus.brokers.amqp import fastpath, topology
from bus.brokers.amqp.errors import mapped
from bus.brokers.amqp.wire import delivery
from bus.brokers.base import Delivery
from bus.errors import BrokerError

__all__ = ["Subscription", "fence", "settle", "start_consumer"]

log = structlog.get_logger(__name__)


class Subscription:
    """One consumer of one RabbitMQ queue (the logical queue, or one of its shards)."""

    def __init__(self, subscriptions: set[Subscription], channel: AbstractChannel, queue: AbstractQueue,
                 on_delivery: Callable[[Delivery], None], prefetch: int, logical: str) -> None:
        self.subscriptions = subscriptions  # the broker's: this one leaves it when stopped
        self.channel, self.queue, self.on_delivery = channel, queue, on_delivery
        self.queue_name = logical  # the queue the bus asked for (a shard's name is queue.name)
        self.prefetch = prefetch
        self.tag = ""
        self.unsettled: set[AbstractIncomingMessage] = set()
        self.all_settled = asyncio.Event()
        self.stopping = False

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        # no await before on_delivery: deliveries reach the dispatcher in arrival order
        self.unsettled.add(message)
        self.on_delivery(delivery(message, (self, message)))

    def settled(self, message: AbstractIncomingMessage) -> None:
        self.unsettled.discard(message)
        if not self.unsettled:
            self.all_settled.set()

    async def stop(self) -> None:
        self.stopping = True
        try:
            with mapped(f"cancelling a consumer of {self.queue_name!r}"):
                await self.queue.cancel(self.tag)
            for _ in range(3):  # deliveries that raced the cancel reach the dispatcher first
                await asyncio.sleep(0)
            while self.unsettled and not self.channel.is_closed:
                self.all_settled.clear()
                await self.all_settled.wait()
        except BrokerError as exc:
            log.warning("consumer cancel incomplete; unacked messages return to the queue", error=str(exc))
        finally:
            self.subscriptions.discard(self)
            if not self.channel.is_closed:
                try:
                    with mapped("closing a consumer channel"):
                        await self.channel.close()
                except BrokerError as exc:
                    log.debug("consumer channel close failed", error=str(exc))


async def start_consumer(connection: AbstractRobustConnection, queue: str, on_delivery: Callable[[Delivery], None],
                         prefetch: int, *, shards: int, subscriptions: set[Subscription],
                         group: topology.ShardGroup | None = None,
                         standby_after: float = 10.0) -> Callable[[], Awaitable[None]]:
    """Consume every shard of the logical `queue` into `on_delivery`; return the stop function.
    Each shard gets the whole prefetch (quorum queues have no channel-wide QoS): a key's
    messages are all in one shard, so its consumer can hold as many as without shards.
    A running consumer is in `subscriptions` (the broker's) until it is stopped.
    With a `group`, the shards it does not prefer are registered `standby_after` seconds later
    (in the background, tried again until it works): the group's own shards go first."""
    subs: list[Subscription] = []
    names = topology.shard_names(queue, shards)
    later = [] if group is None or shards == 1 else [n for i, n in enumerate(names) if not group.prefers(i)]

    async def register(name: str) -> None:
        with mapped(f"consuming from queue {name!r}"):
            channel = await connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=prefetch)
            amqp_queue = await channel.get_queue(name, ensure=True)
            sub = Subscription(subscriptions, channel, amqp_queue, on_delivery, prefetch, logical=queue)
            sub.tag = await amqp_queue.consume(sub.on_message)
            subscriptions.add(sub)
            subs.append(sub)

    for name in names:
        if name not in later:
            await register(name)

    async def stand_by() -> None:
        await asyncio.sleep(standby_after)
        for name in later:
            while True:
                try:
                    await register(name)
                    break
                except BrokerError as exc:
                    log.warning("cannot stand by on a shard yet; trying again", queue=name, error=str(exc))
                    await asyncio.sleep(1.0)

    standby = asyncio.get_running_loop().create_task(stand_by()) if later else None

    async def stop() -> None:
        if standby is not None:
            standby.cancel()
            await asyncio.gather(standby, return_exceptions=True)
        await asyncio.gather(*(sub.stop() for sub in subs))

    return stop


async def settle(item: Delivery, ok: bool, *, fast_path: bool, within: float) -> None:
    """Ack (ok) or requeue one delivery of a `Subscription`, waiting at most `within` seconds."""
    sub, message = item.token
    try:
        if ok and fast_path and fastpath.ack_now(message):
            return
        with mapped(f"{'acking' if ok else 'requeueing'} {item.message_id}"):
            done = message.ack() if ok else message.nack(requeue=True)
            await asyncio.wait_for(asyncio.shield(done), within)
    finally:
        sub.settled(message)


async def fence(item: Delivery) -> None:
    """Return after a channel round trip: basic.qos is answered after the nack before it."""
    sub, _ = item.token
    with mapped("fencing a requeue"):
        underlay = await sub.channel.get_underlay_channel()  # not set_qos: it waits for a channel restore
        await underlay.basic_qos(prefetch_count=sub.prefetch)
