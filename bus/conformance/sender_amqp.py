"""The sender kit over AMQP: the checks of bus.conformance.sender for a system that publishes as
into the bus's AMQP intake (bus.client.AmqpClient on kombu, or its own AMQP code).

    renkei conformance sender --amqp amqp://vendor:secret@broker/renkei-test --count 100

It consumes `queue` (default ``renkei.submit``, declared as the bus declares it) in the vhost of
`url` — the vendor's test broker — and answers each message as the bus's AMQP intake does
(adapters.sources.amqp_intake): JSON ``{"status": "accepted" | "duplicate" | "rejected", ...}``
to ``reply_to`` with the message's ``correlation_id``, then acks it. The ``kind`` header names
the kind of an Avro body, as for the intake.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bus.brokers.amqp import close_connection, mapped, open_connection, queue_arguments
from bus.conformance.sender import SenderCheck
from bus.topology import SUBMIT_QUEUE

__all__ = ["amqp_sender"]


@contextlib.asynccontextmanager
async def amqp_sender(check: SenderCheck, url: str, *, queue: str = SUBMIT_QUEUE,
                      connect_within: float = 10.0) -> AsyncIterator[None]:
    """Consume `queue` at `url`, observing each message with `check`, until the block exits
    (BrokerUnavailable, with no password in it, when the broker cannot be reached)."""
    connection = await open_connection(url, name="renkei conformance sender", connect_within=connect_within)
    try:
        with mapped(f"consuming {queue} for the sender kit"):
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, durable=True, arguments=queue_arguments())

            async def on_message(message: AbstractIncomingMessage) -> None:
                kind = message.headers.get("kind") if message.headers else None
                _, answer = check.observe(message.body, message.content_type or "",
                                          kind if isinstance(kind, str) else None)
                if message.reply_to:
                    reply = aio_pika.Message(json.dumps(answer, ensure_ascii=False).encode(),
                                             content_type="application/json", correlation_id=message.correlation_id)
                    await channel.default_exchange.publish(reply, routing_key=message.reply_to)
                await message.ack()

            tag = await declared.consume(on_message)
        yield
        with contextlib.suppress(Exception):  # closing: the connection may be gone already
            await declared.cancel(tag)
    finally:
        await close_connection(connection)
