"""The fast path: publishes and acks written straight into aiormq's channel, past its public API.

The only module that touches a private attribute of aiormq or aio-pika. It is used when
`[bus] amqp_fast_path` is true (the default; `RENKEI_AMQP_FAST_PATH=0` turns it off) and
the installed aiormq has what it uses (`batch_ready`, `ack_ready`); otherwise the broker
takes the public path (`basic_publish` with confirms, `message.ack()`), which the broker
contract suite runs as well.

- `send_batch`: what aiormq 7.2's `Channel.basic_publish` does for each message (take the
  channel lock, give it a delivery tag and a confirmation future matched to a basic.return
  by message id, write its frames), but for a whole batch under one lock, in one frame
  write (`frames.publish_frames`) and without awaiting the socket drain per message.
  aiormq marshals every frame through pamqp and drains per publish: ~140 µs of CPU a
  message; this is ~40 µs.
- `ack_now`: queue the basic.ack frame at once when the connection's frame buffer has room;
  aiormq's `basic_ack` awaits the socket drain of every ack (~40 µs a message).

tests/contract/test_amqp_wire.py checks that the installed aiormq still has these internals,
so an upgrade that renames them fails there instead of silently taking the public path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import Any

import aiormq.exceptions
from aio_pika.abc import AbstractIncomingMessage
from aiormq.abc import ChannelFrame

from bus.brokers.amqp.frames import ack_frame, publish_frames
from bus.brokers.amqp.wire import wire_headers
from bus.brokers.base import OutgoingMessage

__all__ = ["ACK_INTERNALS", "BATCH_INTERNALS", "ack_now", "ack_ready", "batch_ready", "send_batch"]

#: what `send_batch` uses of aiormq's channel, beside its public API
BATCH_INTERNALS = ("lock", "delivery_tag", "confirmations", "message_id_delivery_tag", "write_queue",
                   "max_content_size", "number", "create_future")
#: what `ack_now` uses of it
ACK_INTERNALS = ("write_queue", "number")
#: (channel class, internals) -> whether its channels have them: looked up once per class
_HAS: dict[tuple[type, tuple[str, ...]], bool] = {}


def _has(channel: object, internals: tuple[str, ...]) -> bool:
    key = (type(channel), internals)
    found = _HAS.get(key)
    if found is None:
        found = _HAS[key] = all(hasattr(channel, name) for name in internals)
    return found


def batch_ready(channel: aiormq.abc.AbstractChannel) -> bool:
    """Whether `send_batch` can publish on this aiormq channel."""
    return _has(channel, BATCH_INTERNALS)


def ack_ready(channel: object) -> bool:
    """Whether `ack_now` can ack on this aiormq channel."""
    return _has(channel, ACK_INTERNALS)


async def send_batch(channel: aiormq.abc.AbstractChannel, items: Sequence[tuple[str, str, OutgoingMessage]],
                     confirm_within: float, due: float | None = None) -> list[BaseException | None]:
    """Publish (exchange, routing key, message) items, mandatory and persistent, on a channel
    with publisher confirms (`batch_ready` must be true), then await the confirms together
    (`due`: a retry's due time, for a wait queue: wire.py).
    Per item: None when confirmed, else the aiormq error (a return, a nack, a closed channel).
    A timeout raises TimeoutError."""
    ch: Any = channel
    confirmations: list[asyncio.Future[Any]] = []
    async with asyncio.timeout(confirm_within):
        async with ch.lock:
            if channel.is_closed:
                raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed")
            first_tag = ch.delivery_tag
            try:
                payload = b"".join([
                    publish_frames(ch.number, exchange, routing_key, message.body, message.message_id,
                                   wire_headers(message, due), ch.max_content_size)
                    for exchange, routing_key, message in items])
                for _, _, message in items:
                    ch.delivery_tag += 1
                    confirmation = ch.create_future()
                    ch.confirmations[ch.delivery_tag] = confirmation
                    ch.message_id_delivery_tag[message.message_id] = ch.delivery_tag
                    confirmations.append(confirmation)
                await ch.write_queue.put(ChannelFrame(payload=payload, should_close=False))
            except BaseException:  # nothing went out: give the tags back, as basic_publish does
                ch.delivery_tag = first_tag
                for tag, (_, _, message) in enumerate(items[: len(confirmations)], first_tag + 1):
                    ch.confirmations.pop(tag, None)
                    if ch.message_id_delivery_tag.get(message.message_id) == tag:
                        ch.message_id_delivery_tag.pop(message.message_id)
                for confirmation in confirmations:
                    confirmation.cancel()
                raise
            for tag, (confirmation, (_, _, message)) in enumerate(zip(confirmations, items, strict=True),
                                                                   first_tag + 1):
                confirmation.add_done_callback(partial(_forget_message_id, ch, message.message_id, tag))
        outcomes = await asyncio.gather(*confirmations, return_exceptions=True)
    return [o if isinstance(o, BaseException) else None for o in outcomes]


def _forget_message_id(channel: Any, message_id: str, tag: int, _: object) -> None:
    if channel.message_id_delivery_tag.get(message_id) == tag:
        channel.message_id_delivery_tag.pop(message_id)


def ack_now(message: AbstractIncomingMessage) -> bool:
    """Queue the basic.ack frame of `message` at once. False when that cannot be done here (a
    closed channel, a full buffer, another aiormq): the caller then acks the public way.
    An ack lost with its connection is a redelivery."""
    try:
        channel: Any = message.channel  # aio-pika raises on a closed channel
    except aiormq.exceptions.ChannelInvalidStateError:
        return False
    tag = message.delivery_tag
    if tag is None or not ack_ready(channel):
        return False
    try:
        channel.write_queue.put_nowait(ChannelFrame(payload=ack_frame(channel.number, tag), should_close=False))
    except asyncio.QueueFull:
        return False
    return True
