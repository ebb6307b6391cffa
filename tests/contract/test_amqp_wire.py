"""What only the RabbitMQ backend does on the wire: the envelope in one header, and a batch
of publishes in one write (`bus.brokers.amqp.fastpath.send_batch`), with aiormq's public
`basic_publish` as the fallback (`[bus] amqp_fast_path = false`, or an aiormq without the
internals the fast path uses). Against a real node (`bash scripts/test.sh` starts one);
every test runs on both paths."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from broker_cases import Recorder, eventually, unique_queue

from bus.brokers.amqp import ENVELOPE_HEADER, KEY_HEADER, AmqpBroker, fastpath
from bus.brokers.base import OutgoingMessage
from bus.errors import PublishNotConfirmed

pytestmark = pytest.mark.amqp

HEADERS: dict[str, Any] = {"message_id": "m-1", "kind": "kokuho.shikaku", "schema_version": 1, "sequence": 7,
                           "legal_basis": "番号法 別表 第30", "destination": "kokuho"}


@pytest.fixture(params=[True, False], ids=["fast-path", "public-path"])
async def broker(amqp_url: str, request: pytest.FixtureRequest) -> AsyncIterator[AmqpBroker]:
    broker = AmqpBroker(amqp_url, fast_path=request.param)
    await broker.connect()
    yield broker
    await broker.close()


@pytest.fixture
async def queues(amqp_url: str) -> AsyncIterator[list[str]]:
    names = [unique_queue() for _ in range(3)]
    declaring = AmqpBroker(amqp_url)
    await declaring.connect()
    try:
        for name in names:
            await declaring.declare(name)
    finally:
        await declaring.close()
    yield names
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)


def _message(n: int, **headers: Any) -> OutgoingMessage:
    return OutgoingMessage(f"body {n}".encode(), f"m-{n}", f"resident-{n}", {**HEADERS, "message_id": f"m-{n}",
                                                                             **headers})


async def _raw(amqp_url: str, queue: str, count: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """The messages as RabbitMQ holds them (a plain consumer; quorum queues with a single
    active consumer allow no basic.get)."""
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        amqp_queue = await channel.get_queue(queue)

        async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            got.append(message)
            await message.ack()

        tag = await amqp_queue.consume(take)
        await eventually(lambda: len(got) >= count)
        await amqp_queue.cancel(tag)
    return got


async def test_the_envelope_travels_as_one_json_header_beside_the_ordering_key(
        amqp_url: str, broker: AmqpBroker, queues: list[str]) -> None:
    await broker.publish(queues[0], _message(1))
    [raw] = await _raw(amqp_url, queues[0], 1)
    assert raw.headers is not None
    assert set(raw.headers) == {ENVELOPE_HEADER, KEY_HEADER}
    packed = raw.headers[ENVELOPE_HEADER]
    assert json.loads(packed.decode() if isinstance(packed, bytes) else str(packed)) == {**HEADERS, "message_id": "m-1"}
    assert raw.message_id == "m-1"
    assert raw.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


async def test_a_consumer_gets_the_headers_back_as_they_were_published(broker: AmqpBroker,
                                                                       queues: list[str]) -> None:
    await broker.publish_many([(queues[0], _message(n)) for n in range(1, 4)])
    handler = Recorder()
    consumer = await broker.consume(queues[0], handler, concurrency=4)
    await eventually(lambda: len(handler.done) == 3)
    await consumer.cancel()
    assert sorted(d.message_id for d in handler.done) == ["m-1", "m-2", "m-3"]
    for delivery in handler.done:
        assert delivery.headers == {**HEADERS, "message_id": delivery.message_id}
        assert delivery.key == f"resident-{delivery.message_id[2:]}"


async def test_plain_headers_from_another_publisher_still_arrive(amqp_url: str, broker: AmqpBroker,
                                                                 queues: list[str]) -> None:
    """Vendor code (kombu) publishes plain header tables into intake."""
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(b"<x/>", message_id="vendor-1", headers={"kind": "jumin.idou", "sequence": 3}),
            routing_key=queues[0])
    handler = Recorder()
    consumer = await broker.consume(queues[0], handler)
    await eventually(lambda: len(handler.done) == 1)
    await consumer.cancel()
    assert handler.done[0].headers == {"kind": "jumin.idou", "sequence": 3}


async def test_a_malformed_envelope_header_reaches_the_handler_as_text(amqp_url: str, broker: AmqpBroker,
                                                                       queues: list[str]) -> None:
    """Not dropped and not left unacked: the handler sees it (and fails on the missing envelope)."""
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(b"<x/>", message_id="bad-1", headers={ENVELOPE_HEADER: "{not json"}),
            routing_key=queues[0])
    handler = Recorder()
    consumer = await broker.consume(queues[0], handler)
    await eventually(lambda: len(handler.done) == 1)
    await consumer.cancel()
    assert handler.done[0].headers == {ENVELOPE_HEADER: "{not json"}


async def test_one_unroutable_message_in_a_batch_fails_alone(broker: AmqpBroker, queues: list[str]) -> None:
    missing = unique_queue()  # never declared: the broker returns that publish
    batch = [(queues[0], _message(1)), (missing, _message(2)), (queues[1], _message(3))]
    with pytest.raises(PublishNotConfirmed, match=r"m-2 to queue .*unroutable.*\(1 of 3 messages not accepted\)"):
        await broker.publish_many(batch)
    await eventually(lambda: _ready(broker, queues[0], 1))
    await eventually(lambda: _ready(broker, queues[1], 1))
    await broker.publish_many([(queues[2], _message(n)) for n in range(4, 9)])  # the channel is still usable
    await eventually(lambda: _ready(broker, queues[2], 5))


@pytest.mark.parametrize("why", ["setting-off", "internals-missing"])
async def test_without_the_fast_path_publishes_and_acks_take_the_public_path(
        why: str, monkeypatch: pytest.MonkeyPatch, amqp_url: str, queues: list[str]) -> None:
    """`[bus] amqp_fast_path = false`, or an aiormq without the internals the fast path uses:
    aiormq's basic_publish and aio-pika's ack, the same outcomes."""
    if why == "internals-missing":
        monkeypatch.setattr(fastpath, "BATCH_INTERNALS", (*fastpath.BATCH_INTERNALS, "not_in_any_aiormq"))
        monkeypatch.setattr(fastpath, "ACK_INTERNALS", (*fastpath.ACK_INTERNALS, "not_in_any_aiormq"))
    sent = _count_calls(monkeypatch, "send_batch")
    acked = _count_calls(monkeypatch, "ack_now")
    broker = AmqpBroker(amqp_url, fast_path=why == "internals-missing")
    await broker.connect()
    try:
        await broker.publish_many([(queues[0], _message(n)) for n in range(1, 6)])
        await eventually(lambda: _ready(broker, queues[0], 5))
        with pytest.raises(PublishNotConfirmed, match=r"\(1 of 2 messages not accepted\)"):
            await broker.publish_many([(queues[1], _message(6)), (unique_queue(), _message(7))])
        await _consume_and_ack(broker, queues[0], 5)
    finally:
        await broker.close()
    assert sent == []  # the fast path was asked and said no (internals missing), or never asked
    assert acked == ([False] * 5 if why == "internals-missing" else [])


async def test_the_installed_aiormq_has_what_the_fast_path_uses(broker: AmqpBroker) -> None:
    """An aiormq upgrade that renames these fails here, instead of silently taking the public path."""
    channel = await broker.connection().channel()
    try:
        underlay = await channel.get_underlay_channel()
        assert [name for name in fastpath.BATCH_INTERNALS if not hasattr(underlay, name)] == []
        assert [name for name in fastpath.ACK_INTERNALS if not hasattr(underlay, name)] == []
        assert fastpath.batch_ready(underlay) and fastpath.ack_ready(underlay)
    finally:
        await channel.close()


async def _consume_and_ack(broker: AmqpBroker, queue: str, count: int) -> None:
    handler = Recorder()
    consumer = await broker.consume(queue, handler)
    await eventually(lambda: len(handler.done) == count)
    await consumer.cancel()
    await eventually(lambda: _ready(broker, queue, 0))


def _count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """The results of every call of `fastpath.<name>` from now on (the function still runs)."""
    results: list[Any] = []
    original = getattr(fastpath, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        results.append(result if not asyncio.iscoroutine(result) else "sent")
        return result

    monkeypatch.setattr(fastpath, name, counted)
    return results


async def test_a_batch_of_many_keeps_its_order_on_one_queue(broker: AmqpBroker, queues: list[str]) -> None:
    await broker.publish_many([(queues[0], _message(n)) for n in range(1, 101)])
    handler = Recorder()
    consumer = await broker.consume(queues[0], handler, concurrency=1)
    await eventually(lambda: len(handler.done) == 100)
    await consumer.cancel()
    assert [d.message_id for d in handler.done] == [f"m-{n}" for n in range(1, 101)]


async def _ready(broker: AmqpBroker, queue: str, expected: int) -> bool:
    await asyncio.sleep(0)
    return (await broker.stats(queue)).ready == expected
