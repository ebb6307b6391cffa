"""RabbitMQ: retries wait in `<queue>.wait` and a mover brings them back (bus/brokers/amqp/waiting.py).

What only RabbitMQ must prove beyond the broker contract's delay cases (broker_cases.py):
- a retry's way back is no broker-internal dead-lettering: the wait queue has no TTL and no
  dead-letter exchange (the delay queues before this had both, and RabbitMQ's at-least-once
  dead-letter worker stranded retries after a node loss: issue 15);
- when the process holding a retry goes, another consumer's mover brings it back when due;
- `renkei retry now` reaches a mover that is holding retries in another process;
- the delay queues of before (`<queue>.delay.<ms>ms`) are still emptied by `retry now`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import pytest
from broker_cases import Recorder, eventually, message, unique_queue
from test_amqp_broker import drop

from bus.brokers.amqp import AmqpBroker
from bus.brokers.amqp.topology import delay_arguments
from bus.brokers.amqp.wire import wire_headers
from bus.topology import delay_queue, wait_queue

pytestmark = pytest.mark.amqp


@pytest.fixture(params=[1, 3], ids=["one-queue", "sharded"])
async def queue(request: pytest.FixtureRequest, amqp_url: str) -> AsyncIterator[tuple[str, int]]:
    name, shards = unique_queue(), int(request.param)
    yield name, shards
    await drop(amqp_url, name, ("", ".wait", ".shard0", ".shard1", ".shard2", ".delay.3600000ms"), exchange=True)


Connected = Callable[[int], Awaitable[AmqpBroker]]


@pytest.fixture
async def connected(amqp_url: str) -> AsyncIterator[Connected]:
    """Connected brokers (`await connected(shards)`), each closed at the end."""
    made: list[AmqpBroker] = []

    async def connect(shards: int) -> AmqpBroker:
        made.append(AmqpBroker(amqp_url, shards=shards))
        await made[-1].connect()
        return made[-1]

    yield connect
    for broker in made:
        await broker.close()


async def _wait_queue_arguments(amqp_url: str, name: str) -> dict[str, object]:
    """The arguments `name` was declared with: a declare with others fails (PRECONDITION_FAILED)."""
    plain = {"x-queue-type": "quorum", "x-single-active-consumer": True}
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True, arguments=plain)  # raises if declared otherwise
    return plain


async def test_a_retry_waits_in_a_queue_with_no_ttl_and_no_dead_lettering(
    amqp_url: str, queue: tuple[str, int]
) -> None:
    name, shards = queue
    broker = AmqpBroker(amqp_url, shards=shards)
    await broker.connect()
    try:
        await broker.declare(name)
        await broker.publish(name, message(1, key="r1"), delay=30)
    finally:
        await broker.close()
    assert await _wait_queue_arguments(amqp_url, wait_queue(name))  # no x-message-ttl, no x-dead-letter-*
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        waiting = await channel.declare_queue(wait_queue(name), passive=True)
        assert waiting.declaration_result.message_count == 1
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):  # the old way is not used
            await (await connection.channel()).declare_queue(delay_queue(name, 30), passive=True)


async def test_when_the_process_holding_a_retry_goes_another_ones_mover_brings_it_back_when_due(
    connected: Connected, queue: tuple[str, int]
) -> None:
    name, shards = queue
    first, second = await connected(shards), await connected(shards)
    await first.declare(name)
    held, other = Recorder(), Recorder()
    for broker in (first, second):  # as the deliver stage does before it consumes its queue
        await broker.expect_delays(name)
    consumer = await first.consume(name, held)  # its mover is the wait queue's active consumer
    standby = await second.consume(name, other)
    sent = time.time()
    await first.publish(name, message(1, key="r1", tier=1), delay=3.0)
    await asyncio.sleep(1.0)  # the first process's mover holds it now
    await consumer.cancel()
    await first.close()  # gone before it was due: what it held goes back to the wait queue
    await eventually(lambda: other.done_ids() == ["m-1"], within=20)
    assert time.time() - sent >= 2.9  # not before its due time
    assert other.done[0].headers == {"sequence": 1, "tier": 1}  # no wait header on the way out
    await standby.cancel()


async def test_retry_now_reaches_a_mover_holding_retries_in_another_process(
    connected: Connected, queue: tuple[str, int]
) -> None:
    name, shards = queue
    running = await connected(shards)
    await running.declare(name)
    handler = Recorder()
    consumer = await running.consume(name, handler)
    await running.publish_many([(name, message(1, key="a", tier=4)), (name, message(2, key="b", tier=4))],
                               delay=3600)
    await asyncio.sleep(1.0)  # held by the running process's mover, an hour from due
    operator = await connected(shards)
    moved = await operator.expedite(name)
    again = await operator.expedite(name)
    await operator.close()
    assert sorted(h["sequence"] for h in moved) == [1, 2] and again == []
    await eventually(lambda: sorted(handler.done_ids()) == ["m-1", "m-2"], within=15)
    await consumer.cancel()


async def test_retry_now_still_empties_a_delay_queue_of_before(amqp_url: str, queue: tuple[str, int]) -> None:
    """A bus upgraded with retries waiting in `<queue>.delay.<ms>ms` (TTL, dead-lettered back)."""
    name, shards = queue
    broker = AmqpBroker(amqp_url, shards=shards)
    await broker.connect()
    try:
        await broker.declare(name)
        legacy = delay_queue(name, 3600)
        async with await aio_pika.connect(amqp_url) as connection:
            channel = await connection.channel()
            await channel.declare_queue(legacy, durable=True, arguments=delay_arguments(name, 3_600_000, shards=shards))
            sample = message(7, key="old", tier=3)
            await channel.default_exchange.publish(
                aio_pika.Message(sample.body, headers=wire_headers(sample), message_id=sample.message_id),
                routing_key=legacy)
        moved = await broker.expedite(name, waits=(3600,))
        assert [h["sequence"] for h in moved] == [7]
        handler = Recorder()
        consumer = await broker.consume(name, handler)
        await eventually(lambda: handler.done_ids() == ["m-7"], within=15)
        await consumer.cancel()
    finally:
        await broker.close()


async def test_a_process_started_after_one_died_holding_retries_brings_them_back_before_it_delays_any(
    amqp_url: str, queue: tuple[str, int]
) -> None:
    """A deliverer restarted after a kill: it has delayed nothing yet, and the retries the dead
    one left waiting come back all the same (`expect_delays` starts its mover)."""
    name, shards = queue
    dead = AmqpBroker(amqp_url, shards=shards)
    await dead.connect()
    try:
        await dead.declare(name)
        await dead.expect_delays(name)
        await dead.consume(name, Recorder())
        await dead.publish(name, message(1, key="r1"), delay=1.0)
        await asyncio.sleep(0.3)
    finally:
        await dead.close()  # before it was due
    restarted = AmqpBroker(amqp_url, shards=shards)
    await restarted.connect()
    try:
        await restarted.expect_delays(name)
        handler = Recorder()
        consumer = await restarted.consume(name, handler)
        await eventually(lambda: handler.done_ids() == ["m-1"], within=15)
        await consumer.cancel()
    finally:
        await restarted.close()
