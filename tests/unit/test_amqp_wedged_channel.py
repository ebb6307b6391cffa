"""A publishing channel whose publishes are nacked or not confirmed in time is replaced (issue 15).

Seen on the 3-node cluster (tests/cluster/test_cluster_nway.py): after the node leading the
queues was killed, RabbitMQ nacked every later publish of a router's channel to some of
them, while its connection stayed up; the router retried on it for ever, holding its shard.
Here the channel is an in-memory fake (what RabbitMQ did is the cluster test's to show): one
that nacks or never confirms, then the publisher's next channel, which confirms."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiormq.exceptions
import pytest

from bus.brokers.amqp import waiting
from bus.brokers.amqp.publishing import Publisher
from bus.brokers.amqp.waiting import Mover
from bus.brokers.amqp.wire import DUE_HEADER
from bus.brokers.base import OutgoingMessage
from bus.errors import PublishNotConfirmed


class Underlay:
    """aiormq's channel, as the public path uses it: a `wedged` one never confirms, or nacks."""

    def __init__(self, wedged: str) -> None:
        self.wedged = wedged
        self.published: list[str] = []

    async def basic_publish(self, body: bytes, *, routing_key: str, **options: Any) -> None:
        if self.wedged == "silent":  # as aiormq's: no confirm within the publisher's timeout
            await asyncio.sleep(options["timeout"])
            raise TimeoutError
        if self.wedged == "nacks":
            raise aiormq.exceptions.DeliveryError(None, None)  # type: ignore[arg-type]
        self.published.append(routing_key)


class Closing:
    """A channel's open/closed state, as aio-pika's."""

    is_closed = False

    async def close(self) -> None:
        self.is_closed = True


class Channel(Closing):
    def __init__(self, wedged: str) -> None:
        self.underlay = Underlay(wedged)

    async def get_underlay_channel(self) -> Underlay:
        return self.underlay


class Connection:
    """Hands out a wedged channel first, then good ones."""

    def __init__(self, wedged: str) -> None:
        self.wedged = wedged
        self.connected = asyncio.Event()
        self.connected.set()
        self.opened: list[Channel] = []

    def channel(self, **_: Any) -> Any:
        async def opened() -> Channel:
            self.opened.append(Channel(wedged="" if self.opened else self.wedged))
            return self.opened[-1]
        return opened()


class Link:
    url = "amqp://guest:guest@127.0.0.1:5672/"

    def __init__(self, wedged: str = "silent") -> None:
        self.conn = Connection(wedged)

    def connection(self) -> Connection:
        return self.conn


@pytest.mark.parametrize(("wedged", "said"), [("silent", "not confirmed in time"), ("nacks", "nacked")])
async def test_publishes_nacked_or_not_confirmed_move_to_a_new_channel_and_the_wedged_one_is_closed(
        wedged: str, said: str) -> None:
    link = Link(wedged)
    publisher = Publisher(link, shards=1, fast_path=False, timeout=0.05)  # type: ignore[arg-type]
    await publisher.open()
    items = [("renkei.dest.zei", OutgoingMessage(b"<x/>", f"m{i}.zei", "subject", {})) for i in range(3)]
    with pytest.raises(PublishNotConfirmed, match=said):
        await publisher.publish_many(items)
    wedged = link.conn.opened[0]
    assert wedged.is_closed, "the channel that confirmed nothing is closed"
    await publisher.publish_many(items)  # the caller's retry
    assert len(link.conn.opened) == 2
    assert link.conn.opened[1].underlay.published == ["renkei.dest.zei"] * 3
    assert wedged.underlay.published == []


async def test_one_timed_out_message_publishes_again_on_a_new_channel() -> None:
    link = Link()
    publisher = Publisher(link, shards=1, fast_path=False, timeout=0.05)  # type: ignore[arg-type]
    await publisher.open()
    twice = [("renkei.dest.zei", OutgoingMessage(b"<x/>", "same.zei", "subject", {}))] * 2  # one at a time
    with pytest.raises(PublishNotConfirmed):
        await publisher.publish_many(twice)  # the first times out; the second, after it, is on the new channel
    await publisher.publish_many(twice)
    assert [len(c.underlay.published) for c in link.conn.opened] == [0, 3]


# -- the wait queue's mover (waiting.py): its copies went on a wedged channel for ever -------------

class MoverConnection:
    """Channels for a `Mover`: the first channel anything is published on nacks every publish (as
    RabbitMQ 3.10 did to a mover's channel after the node leading the queues was killed: the
    cluster suite saw 3 retries held for 4 minutes, nacked every second); later ones confirm."""

    def __init__(self) -> None:
        self.opened: list[MoverChannel] = []
        self.wedged: MoverChannel | None = None
        self.consumer: Any = None

    def channel(self, **_: Any) -> Any:
        async def opened() -> MoverChannel:
            self.opened.append(MoverChannel(self))
            return self.opened[-1]
        return opened()


class MoverChannel(Closing):
    def __init__(self, connection: MoverConnection) -> None:
        self.connection = connection
        self.published: list[str] = []
        self.default_exchange = MoverExchange(self)

    async def set_qos(self, **_: Any) -> None:
        pass

    async def get_queue(self, name: str, **_: Any) -> Any:
        channel = self

        class WaitQueue:
            async def consume(self, callback: Any) -> None:
                channel.connection.consumer = callback
        return WaitQueue()

    async def get_exchange(self, name: str, **_: Any) -> MoverExchange:
        return self.default_exchange


class MoverExchange:
    def __init__(self, channel: MoverChannel) -> None:
        self.channel = channel

    async def publish(self, message: Any, **_: Any) -> None:
        connection = self.channel.connection
        if connection.wedged is None:
            connection.wedged = self.channel
        if connection.wedged is self.channel:
            raise aiormq.exceptions.DeliveryError(None, None)  # type: ignore[arg-type]
        self.channel.published.append(message.message_id)


class Held:
    """A retry the wait queue delivered to the mover, due now."""

    def __init__(self, channel: MoverChannel, n: int) -> None:
        self.channel, self.body, self.message_id = channel, b"<x/>", f"m{n}.kokuho"
        self.content_type = "application/xml"
        self.headers = {DUE_HEADER: str(time.time())}
        self.acked = False

    async def ack(self) -> None:
        self.acked = True


async def test_a_movers_copies_nacked_go_on_a_new_channel_and_the_retries_it_holds_are_moved(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "_AGAIN", 0.01)
    connection = MoverConnection()
    mover = Mover(connection, "renkei.dest.kokuho", shards=1)  # type: ignore[arg-type]
    mover.start()
    try:
        for _ in range(200):
            if connection.consumer is not None:
                break
            await asyncio.sleep(0.01)
        consumed_on = connection.opened[0]
        held = [Held(consumed_on, n) for n in range(3)]
        for message in held:
            await connection.consumer(message)
        for _ in range(300):  # 3 s: on a wedged channel they are tried again every _AGAIN, for ever
            if all(m.acked for m in held):
                break
            await asyncio.sleep(0.01)
        assert [m.acked for m in held] == [True] * 3, "the retries held were never moved"
        assert connection.wedged is not None and connection.wedged.is_closed, "the channel that nacked is closed"
        assert connection.wedged is not consumed_on and not consumed_on.is_closed, \
            "the channel it consumes on is kept: what it holds stays with it"
        assert sorted(connection.opened[-1].published) == ["m0.kokuho", "m1.kokuho", "m2.kokuho"]
        assert mover.released == 3
    finally:
        await mover.stop()
