"""The fast path's publisher confirms (`fastpath.send_batch`): one future per batch, not one per message.

aiormq gives every publish its own future in the channel's future store, with four
done-callbacks; the fast path gives a batch one future there and puts a light `_Confirm` per
message in `channel.confirmations`, where aiormq's own confirm handlers settle it. Here the
channel is a fake with the internals the fast path uses, and the broker's answers go through
aiormq's real handlers (`Channel._on_confirm_frame`, `_confirm_delivery`) called on it, so an
aiormq that settled confirmations another way would fail here. The real node's side (returns,
a batch among many, the public path) is tests/contract/test_amqp_wire.py's.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import aiormq
import aiormq.exceptions
import pytest
from pamqp import commands as spec

from bus.brokers.amqp import fastpath
from bus.brokers.base import OutgoingMessage


class FakeChannel:
    """What `send_batch` and aiormq's confirm handlers use of an aiormq channel."""

    publisher_confirms = True
    number = 1
    max_content_size = 131072
    # aiormq's own handlers of the broker's answers, run on this channel
    _on_confirm_frame = aiormq.Channel._on_confirm_frame
    _confirm_delivery = aiormq.Channel._confirm_delivery

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.lock = asyncio.Lock()
        self.delivery_tag = 0
        self.confirmations: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self.message_id_delivery_tag: dict[str | None, int] = {}
        self.write_queue: asyncio.Queue[Any] = asyncio.Queue()
        self.is_closed = False
        self.futures: list[asyncio.Future[Any]] = []  # aiormq's future store: what a close rejects

    def create_future(self) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        self.futures.append(future)
        return future

    def close(self, reason: BaseException) -> None:
        """As aiormq's FutureStore.reject_all on a closed channel."""
        self.is_closed = True
        for future in self.futures:
            if not future.done():
                future.set_exception(reason)

    async def ack(self, tag: int, *, multiple: bool = False) -> None:
        await self._on_confirm_frame(spec.Basic.Ack(delivery_tag=tag, multiple=multiple))
        await asyncio.sleep(0)  # a multiple ack settles each tag in a loop callback (call_soon)

    async def nack(self, tag: int) -> None:
        await self._on_confirm_frame(spec.Basic.Nack(delivery_tag=tag))


def _items(count: int) -> list[tuple[str, str, OutgoingMessage]]:
    return [("", f"q{n}", OutgoingMessage(b"<x/>", f"m-{n}", f"r-{n}", {"message_id": f"m-{n}"}))
            for n in range(1, count + 1)]


async def _sent(channel: FakeChannel, count: int, within: float = 5.0) -> asyncio.Task[list[BaseException | None]]:
    task = asyncio.create_task(fastpath.send_batch(channel, _items(count), within))  # type: ignore[arg-type]
    await channel.write_queue.get()  # the batch's frames went out, in one write
    return task


async def test_one_future_per_batch_and_a_nack_fails_its_message_alone() -> None:
    channel = FakeChannel()
    task = await _sent(channel, 3)
    assert len(channel.futures) == 1  # aiormq's basic_publish: one per message, each with 4 callbacks
    await channel.ack(1)
    await channel.nack(2)
    assert not task.done()
    await channel.ack(3)
    outcomes = await task
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], aiormq.exceptions.DeliveryError)
    assert channel.confirmations == {} and channel.message_id_delivery_tag == {}


async def test_a_multiple_ack_confirms_every_tag_up_to_it() -> None:
    channel = FakeChannel()
    first = await _sent(channel, 2)
    second = await _sent(channel, 3)
    await channel.ack(4, multiple=True)
    assert await first == [None, None]
    assert not second.done()
    await channel.ack(5)
    assert await second == [None, None, None]
    assert channel.confirmations == {} and channel.message_id_delivery_tag == {}


async def test_a_closed_channel_fails_every_message_not_confirmed_at_once() -> None:
    channel = FakeChannel()
    task = await _sent(channel, 3, within=60.0)
    await channel.ack(1)
    reason = aiormq.exceptions.ChannelNotFoundEntity("NOT_FOUND - no exchange")
    channel.close(reason)
    outcomes = await asyncio.wait_for(task, 1.0)  # not the 60 s confirm timeout
    assert outcomes == [None, reason, reason]
    assert channel.message_id_delivery_tag == {}


async def test_no_confirm_in_time_raises_and_a_late_one_is_harmless() -> None:
    channel = FakeChannel()
    task = await _sent(channel, 2, within=0.05)
    with pytest.raises(TimeoutError):
        await task
    assert channel.message_id_delivery_tag == {}  # nothing kept for messages given up on
    await channel.ack(2, multiple=True)  # the broker answers after all
    assert channel.confirmations == {}


async def test_a_cancelled_publish_is_cancelled_not_reported_as_failed() -> None:
    channel = FakeChannel()
    task = await _sent(channel, 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert channel.message_id_delivery_tag == {}


async def test_a_batch_that_could_not_be_written_gives_its_tags_back() -> None:
    channel = FakeChannel()
    channel.write_queue = asyncio.Queue(maxsize=1)
    channel.write_queue.put_nowait("a frame before it")
    task = asyncio.create_task(fastpath.send_batch(channel, _items(2), 5.0))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)  # waiting for room in the connection's frame buffer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert channel.delivery_tag == 0
    assert channel.confirmations == {} and channel.message_id_delivery_tag == {}
