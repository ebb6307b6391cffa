"""RabbitMQ: messages waiting in a delay queue of before December 2026 made due now (`renkei retry now`).

Retries now wait in `<queue>.wait` (waiting.py). Before, a delayed publish waited in
`<queue>.delay.<millis>ms` until its TTL dead-lettered it back into `<queue>` (topology.py);
a bus upgraded with retries still waiting there gets them back by their TTL, or, to make them
due now, each message of those delay queues is
moved into `<queue>` (its exchange, when sharded) much as `renkei queues migrate` moves one:
taken (by a consumer: a delay queue has a single active consumer, and RabbitMQ refuses
basic.get on such a queue), a copy published with a publisher confirm, then the original acked. A crash
in between leaves it in both places, which the deliver stage's idempotency absorbs (at least
once, never lost). Order within a delay queue is kept; a resident has at most one change
retrying (the others are held by the deliver stage), so order across queues does not matter.

RabbitMQ cannot list queues over AMQP: the delay queues looked in are those of the waits the
caller names (a destination's retry tiers). A last wait cut short by the deadline (shorter
than a tier) is not found this way; it ends before the deadline anyway. The moving parts
(`passive_counts`, `copy_message`) serve `renkei queues migrate` too (migration.py); this
module imports neither broker.py nor migration.py, so broker.py can use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from bus.brokers.amqp.errors import mapped
from bus.topology import delay_queue

__all__ = ["copy_message", "delay_queue_names", "move_delayed", "passive_counts"]

_PREFETCH = 100
_IDLE = 5.0  # seconds without the next message: the rest expired into the queue meanwhile
#: headers a queue adds on the way out, which a copy must not carry into another queue
_QUEUE_HEADERS = ("x-delivery-count",)


class Channels(Protocol):
    """What of bus.brokers.amqp.AmqpBroker this module needs."""

    shards: int
    publish_timeout: float  # seconds for a copy's publisher confirm

    def admin_channel(self, *, confirms: bool = False) -> AbstractAsyncContextManager[AbstractChannel]: ...


def delay_queue_names(queue: str, waits: Iterable[float]) -> list[str]:
    """The delay queues of `queue` for each wait in seconds (as `AmqpBroker` names them)."""
    return sorted({delay_queue(queue, wait) for wait in waits})


async def move_delayed(broker: Channels, queue: str, delay_queues: Iterable[str]) -> list[dict[str, Any]]:
    """Move every message of the existing `delay_queues` into `queue`; the AMQP headers of each."""
    moved: list[dict[str, Any]] = []
    for name in sorted(set(delay_queues)):
        found = await passive_counts(broker, name)
        if found is None or not found[0]:
            continue
        with mapped(f"moving the messages of {name!r} into {queue!r}", publishing=True):
            moved += await _move(broker, queue, name, found[0])
    return moved


async def _move(broker: Channels, queue: str, name: str, waiting: int) -> list[dict[str, Any]]:
    """The `waiting` messages of the delay queue `name`, moved into `queue` one by one."""
    moved: list[dict[str, Any]] = []
    async with broker.admin_channel(confirms=True) as channel:
        if broker.shards == 1:
            exchange, routing_key = channel.default_exchange, queue
        else:  # the queue's consistent-hash exchange, as the delay queue's own dead-lettering does
            exchange, routing_key = await channel.get_exchange(queue, ensure=False), queue
        await channel.set_qos(prefetch_count=_PREFETCH)
        source = await channel.get_queue(name, ensure=False)
        # by a consumer: a delay queue has a single active consumer, which refuses basic.get;
        # no one else consumes it (its messages leave by TTL), so this one is active at once
        async with source.iterator(no_ack=False) as messages:
            for _ in range(waiting):  # what waited when we looked; later ones wait their turn
                try:
                    message = await asyncio.wait_for(messages.__anext__(), _IDLE)
                except (TimeoutError, StopAsyncIteration):  # expired into the queue meanwhile
                    break
                await exchange.publish(copy_message(message), routing_key=routing_key, mandatory=True,
                                       timeout=broker.publish_timeout)  # else a confirm lost waits for ever
                await message.ack()
                moved.append(dict(message.headers or {}))
    return moved


async def passive_counts(broker: Channels, name: str) -> tuple[int, int] | None:
    """(ready, consumers) of queue `name`, or None when there is none (a fresh channel each:
    a failed declare closes its channel)."""
    with mapped(f"looking up queue {name!r}"):
        async with broker.admin_channel() as channel:
            try:
                result = (await channel.declare_queue(name, passive=True)).declaration_result
            except aiormq.exceptions.ChannelNotFoundEntity:
                return None
    return result.message_count or 0, result.consumer_count or 0


def copy_message(message: AbstractIncomingMessage) -> aio_pika.Message:
    """A persistent copy of `message` (body, headers, properties) to publish elsewhere, `user_id`
    included (the AMQP intake authenticates a vendor by it). RabbitMQ accepts a `user_id` only
    from that user's own connection or an `impersonator`, so moving a vendor's submission
    otherwise fails with nothing lost: drain `renkei.submit` with the old bus first."""
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _QUEUE_HEADERS}
    return aio_pika.Message(
        message.body, headers=headers, message_id=message.message_id, content_type=message.content_type,
        content_encoding=message.content_encoding, correlation_id=message.correlation_id,
        reply_to=message.reply_to, timestamp=message.timestamp, type=message.type, app_id=message.app_id,
        user_id=message.user_id, priority=message.priority, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
