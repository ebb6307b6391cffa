"""RabbitMQ: messages waiting in a delay queue made due now (`renkei retry now`).

A delayed publish waits in `<queue>.delay.<millis>ms` until its TTL dead-letters it back into
`<queue>` (bus/brokers/amqp.py). To make it due now, each message of those delay queues is
moved into `<queue>` (its exchange, when sharded) much as `renkei queues migrate` moves one:
taken (by a consumer: a delay queue has a single active consumer, and RabbitMQ refuses
basic.get on such a queue), a copy published with a publisher confirm, then the original acked. A crash
in between leaves it in both places, which the deliver stage's idempotency absorbs (at least
once, never lost). Order within a delay queue is kept; a resident has at most one change
retrying (the others are held by the deliver stage), so order across queues does not matter.

RabbitMQ cannot list queues over AMQP: the delay queues looked in are those of the waits the
caller names (a destination's retry tiers) and those this broker declared itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson

from bus.brokers.amqp import ENVELOPE_HEADER, KEY_HEADER, AmqpBroker
from bus.brokers.amqp_queues import _copy, _passive

__all__ = ["delay_queue_names", "move_delayed"]

_PREFETCH = 100
_IDLE = 5.0  # seconds without the next message: the rest expired into the queue meanwhile


def delay_queue_names(queue: str, waits: Iterable[float]) -> list[str]:
    """The delay queues of `queue` for each wait in seconds (as `AmqpBroker` names them)."""
    return sorted({f"{queue}.delay.{max(1, round(wait * 1000))}ms" for wait in waits})


async def move_delayed(broker: AmqpBroker, queue: str, delay_queues: Iterable[str]) -> list[dict[str, Any]]:
    """Move every message of the existing `delay_queues` into `queue`; the headers of each."""
    moved: list[dict[str, Any]] = []
    for name in sorted(set(delay_queues)):
        found = await _passive(broker, name)
        if found is None or not found[0]:
            continue
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
                for _ in range(found[0]):  # what waited when we looked; later ones wait their turn
                    try:
                        message = await asyncio.wait_for(messages.__anext__(), _IDLE)
                    except (TimeoutError, StopAsyncIteration):  # expired into the queue meanwhile
                        break
                    await exchange.publish(_copy(message), routing_key=routing_key, mandatory=True)
                    await message.ack()
                    moved.append(_envelope_headers(message.headers or {}))
    return moved


def _envelope_headers(headers: dict[str, Any]) -> dict[str, Any]:
    packed = headers.get(ENVELOPE_HEADER)
    try:
        value = orjson.loads(packed) if packed is not None else None
    except (TypeError, ValueError):
        value = None
    if isinstance(value, dict):
        return value
    return {k: v for k, v in headers.items() if k not in (ENVELOPE_HEADER, KEY_HEADER)}
