"""A copy whose publisher confirm never comes fails in time; it does not wait for ever.

Siblings of the wedged mover (test_amqp_wedged_channel.py): `renkei retry now` emptying the old
delay queues (expedite.py) and `renkei queues migrate` (migration.py) copy each message with a
publisher confirm, then ack the original. They published with no timeout, so a channel that
never confirmed (as RabbitMQ 3.10's did after a queue's leader was lost with its node) held
the operator's command for ever. Now they fail with `PublishNotConfirmed` after the broker's
`publish_timeout`, the message unacknowledged (it stays where it was), and can be run again.
The channel is an in-memory fake: one that never confirms."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bus.brokers.amqp import expedite, migration
from bus.errors import PublishNotConfirmed


class Waiting:
    def __init__(self, n: int) -> None:
        self.body, self.headers, self.message_id = b"<x/>", {"n": n}, f"m{n}"
        self.content_type = self.content_encoding = self.correlation_id = self.reply_to = None
        self.timestamp = self.type = self.app_id = self.user_id = self.priority = None
        self.acked = False

    async def ack(self) -> None:
        self.acked = True


class Silent:
    """An exchange whose publishes are never confirmed (aio-pika's `timeout` raises TimeoutError)."""

    def __init__(self) -> None:
        self.tried = 0

    async def publish(self, message: Any, *, routing_key: str, mandatory: bool,
                      timeout: float | None = None) -> None:  # noqa: ASYNC109 (aio-pika's signature)
        self.tried += 1
        await asyncio.wait_for(asyncio.Event().wait(), timeout)


class Source:
    def __init__(self, messages: list[Waiting]) -> None:
        self.messages = messages
        self.declaration_result = type("Result", (), {"message_count": len(messages), "consumer_count": 0})()

    async def get(self, **_: Any) -> Waiting | None:
        return next((m for m in self.messages if not m.acked), None)

    @contextlib.asynccontextmanager
    async def iterator(self, **_: Any) -> AsyncIterator[Any]:
        async def each() -> AsyncIterator[Waiting]:
            for message in self.messages:
                yield message
        yield each()


class Channel:
    def __init__(self, source: Source, exchange: Silent) -> None:
        self.source, self.default_exchange = source, exchange

    async def set_qos(self, **_: Any) -> None:
        pass

    async def declare_queue(self, name: str, **_: Any) -> Source:
        return self.source

    async def get_queue(self, name: str, **_: Any) -> Source:
        return self.source

    async def get_exchange(self, name: str, **_: Any) -> Silent:
        return self.default_exchange


class Broker:
    shards = 1
    publish_timeout = 0.1

    def __init__(self) -> None:
        self.messages = [Waiting(n) for n in range(3)]
        self.exchange = Silent()

    @contextlib.asynccontextmanager
    async def admin_channel(self, **_: Any) -> AsyncIterator[Channel]:
        yield Channel(Source(self.messages), self.exchange)


async def test_renkei_retry_now_moving_an_old_delay_queue_fails_in_time_when_no_confirm_comes() -> None:
    broker = Broker()
    with pytest.raises(PublishNotConfirmed, match="not confirmed in time"):
        await asyncio.wait_for(expedite.move_delayed(broker, "renkei.dest.zei", ["renkei.dest.zei.delay.500ms"]), 5)
    assert broker.exchange.tried == 1 and not any(m.acked for m in broker.messages), "nothing acked: nothing lost"


async def test_renkei_queues_migrate_moving_a_queue_fails_in_time_when_no_confirm_comes() -> None:
    broker = Broker()
    with pytest.raises(PublishNotConfirmed, match="not confirmed in time"):
        await asyncio.wait_for(migration._move(broker, "renkei.dest.zei", "renkei.dest.zei.migrating"), 5)  # type: ignore[arg-type]
    assert broker.exchange.tried == 1 and not any(m.acked for m in broker.messages), "nothing acked: nothing lost"
