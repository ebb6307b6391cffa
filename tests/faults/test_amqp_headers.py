"""Regression (found by the poison scenario): a message that comes back from a RabbitMQ delay
queue carries RabbitMQ's `x-death` record (timestamps, not JSON); the broker contract says
header values are JSON, and the delivery store writes them as JSON when it holds or
dead-letters a message — which failed, and the deliverer looped on the message forever."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest

from bus.brokers.amqp import AmqpBroker
from bus.brokers.base import Delivery, OutgoingMessage

pytestmark = pytest.mark.amqp


async def test_a_message_back_from_a_delay_tier_has_json_headers_only(amqp_url: str) -> None:
    broker = AmqpBroker(amqp_url)
    queue = f"renkei.test.death-{uuid.uuid4().hex[:8]}"
    await broker.connect()
    got: asyncio.Queue[Delivery] = asyncio.Queue()

    async def handler(delivery: Delivery) -> None:
        await got.put(delivery)

    try:
        await broker.declare(queue)
        await broker.publish(queue, OutgoingMessage(b"x", "m1", "k", {"x-renkei-tier": 1}), delay=0.1)
        consumer = await broker.consume(queue, handler)
        delivery = await asyncio.wait_for(got.get(), 20)
        await consumer.cancel()
    finally:
        await broker.close()
        async with await aio_pika.connect(amqp_url) as connection:
            for name in (queue, f"{queue}.wait"):
                await (await connection.channel()).queue_delete(name)
    assert delivery.headers["x-renkei-tier"] == 1
    assert not [k for k in delivery.headers if "death" in k]
    json.dumps(delivery.headers)  # what DeliveryStore.hold/add_dead do
