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
  message; this is ~40 µs. The batch's confirms are awaited as one future (`_Confirms`),
  which aiormq's confirm, nack and return handlers settle message by message through the
  `_Confirm` each holds in `channel.confirmations`: −6 to −11 % of the router's CPU per
  message on RabbitMQ (bench/README.md, stop 24).
- `ack_now`: queue the basic.ack frame at once when the connection's frame buffer has room;
  aiormq's `basic_ack` awaits the socket drain of every ack (~40 µs a message).

tests/contract/test_amqp_wire.py checks that the installed aiormq still has these internals,
so an upgrade that renames them fails there instead of silently taking the public path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
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
    async with asyncio.timeout(confirm_within):
        async with ch.lock:
            if channel.is_closed:
                raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed")
            first_tag = ch.delivery_tag
            payload = b"".join([
                publish_frames(ch.number, exchange, routing_key, message.body, message.message_id,
                               wire_headers(message, due), ch.max_content_size)
                for exchange, routing_key, message in items])
            batch = _Confirms(ch, len(items))
            tags = ch.confirmations
            by_id = ch.message_id_delivery_tag
            for index, (_, _, message) in enumerate(items):
                tag = first_tag + 1 + index
                tags[tag] = _Confirm(batch, index)
                by_id[message.message_id] = tag
                batch.tags.append((message.message_id, tag))
            ch.delivery_tag = first_tag + len(items)
            try:
                await ch.write_queue.put(ChannelFrame(payload=payload, should_close=False))
            except BaseException:  # nothing went out: give the tags back, as basic_publish does
                ch.delivery_tag = first_tag
                for _, tag in batch.tags:
                    tags.pop(tag, None)
                batch.give_up()
                batch.future.cancel()
                raise
        return await batch.outcomes()


class _Confirms:
    """The confirms of one batch, awaited as one future (aiormq's: created by the channel, so a
    closed channel rejects it). aiormq gives every publish a future of its own, with four
    done-callbacks (its future store's, its parent store's, its exception reader, and the
    message-id cleanup), each one more loop callback when the confirm comes: ~13 µs of CPU a
    publish (py-spy, bench.pipeline), which this replaces with one `_Confirm` per message."""

    __slots__ = ("by_id", "future", "left", "results", "tags")

    def __init__(self, channel: Any, count: int) -> None:
        self.results: list[Any] = [_PENDING] * count
        self.tags: list[tuple[str | None, int]] = []  # (message id, delivery tag) per message
        self.left = count
        self.by_id: dict[str | None, int] = channel.message_id_delivery_tag
        self.future: asyncio.Future[None] = channel.create_future()

    def settle(self, index: int, error: BaseException | None) -> None:
        self.results[index] = error
        self._forget(index)
        self.left -= 1
        if self.left == 0 and not self.future.done():
            self.future.set_result(None)

    def _forget(self, index: int) -> None:
        message_id, tag = self.tags[index]
        if self.by_id.get(message_id) == tag:  # matched a basic.return to its message: done with it
            del self.by_id[message_id]

    async def outcomes(self) -> list[BaseException | None]:
        """Per message: None (confirmed) or its error, once every confirm is in."""
        try:
            await self.future
        except asyncio.CancelledError:
            self.give_up()
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this task is cancelled (a timeout among them): not the channel's doing
            return self._unsettled(aiormq.exceptions.ChannelInvalidStateError("publish confirms cancelled"))
        except Exception as exc:  # the channel was closed: aiormq rejected the batch's future
            self.give_up()
            return self._unsettled(exc)
        return self.results

    def give_up(self) -> None:
        """Forget the message ids of the messages not confirmed (aiormq matches a return by id)."""
        for index, outcome in enumerate(self.results):
            if outcome is _PENDING:
                self._forget(index)

    def _unsettled(self, error: BaseException) -> list[BaseException | None]:
        return [error if outcome is _PENDING else outcome for outcome in self.results]


_PENDING: Any = object()


class _Confirm:
    """What aiormq's `confirmations` holds for one message: the Future methods its confirm, nack
    and return handlers call (`done`, `cancelled`, `set_result`, `set_exception`)."""

    __slots__ = ("batch", "index", "settled")

    def __init__(self, batch: _Confirms, index: int) -> None:
        self.batch = batch
        self.index = index
        self.settled = False

    def done(self) -> bool:
        return self.settled

    def cancelled(self) -> bool:
        return False

    def set_result(self, _: object) -> None:
        self._settle(None)

    def set_exception(self, error: BaseException) -> None:
        self._settle(error)

    def _settle(self, error: BaseException | None) -> None:
        if not self.settled:
            self.settled = True
            self.batch.settle(self.index, error)


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
