"""The AMQP intake on a real RabbitMQ (a vhost of its own): its queue is declared like every
other bus queue, with a single active consumer, so a second bus process is a hot standby that
takes over; a queue made by an earlier renkei without one is a broker error that says what to do."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import aio_pika
import aiormq.exceptions
import pytest
from click.testing import CliRunner

from adapters.sources.amqp_intake import AmqpIntake
from bus.brokers.amqp import queue_arguments
from bus.cli import main
from bus.errors import BrokerError
from bus.ports import Submission
from bus.stages.gate import Gate
from bus.tenancy import SourceBinding, Sources

pytestmark = [pytest.mark.amqp, pytest.mark.integration]

MUNICIPALITY = "131016"


class Counting:
    """The bus's intake, as a fake: it accepts every submission and remembers it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def submit(self, raw: bytes, *, content_type: str, source: str, kind: str | None = None) -> Submission:
        self.bodies.append(raw)
        return Submission("accepted", message_id=f"m-{len(self.bodies)}")


def _gate() -> Gate:
    """The test node's user `guest` is the vendor (RabbitMQ checks the user_id it publishes)."""
    return Gate(Sources([SourceBinding("vendor-131016", frozenset({MUNICIPALITY}), amqp_user="guest")]))


@pytest.fixture
async def queue(amqp_vhost_url: str) -> AsyncIterator[str]:
    name = f"renkei.submit.{uuid.uuid4().hex[:8]}"
    yield name
    async with await aio_pika.connect(amqp_vhost_url) as connection:
        await (await connection.channel()).queue_delete(name)


async def _submit(url: str, queue: str, bodies: list[bytes]) -> None:
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body, user_id="guest", content_type="application/xml"), routing_key=queue)


async def _until(check: Callable[[], bool], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not true within {within} s"
        await asyncio.sleep(0.05)


async def test_the_amqp_intakes_queue_has_a_single_active_consumer(amqp_vhost_url: str, queue: str) -> None:
    """Declared with the arguments of every bus queue: RabbitMQ refuses it without
    x-single-active-consumer, and of two bus processes only one takes submissions, in order;
    the other takes over when the first stops."""
    first, second = Counting(), Counting()
    active = AmqpIntake(amqp_vhost_url, MUNICIPALITY, first, _gate(), queue=queue)
    standby = AmqpIntake(amqp_vhost_url, MUNICIPALITY, second, _gate(), queue=queue)
    await active.start()
    try:
        await standby.start()
        async with await aio_pika.connect(amqp_vhost_url) as connection:
            channel = await connection.channel()
            with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="x-single-active-consumer"):
                await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
            channel = await connection.channel()
            await channel.declare_queue(queue, durable=True, arguments=queue_arguments())  # the same: no error

        await _submit(amqp_vhost_url, queue, [f"<m n='{n}'/>".encode() for n in range(10)])
        await _until(lambda: len(first.bodies) == 10)
        await asyncio.sleep(0.3)
        assert first.bodies == [f"<m n='{n}'/>".encode() for n in range(10)] and second.bodies == []

        await active.stop()
        await _submit(amqp_vhost_url, queue, [b"<m n='10'/>"])
        await _until(lambda: second.bodies == [b"<m n='10'/>"])
    finally:
        await active.stop()
        await standby.stop()


async def test_an_intake_queue_an_earlier_renkei_made_is_a_broker_error_until_it_is_migrated(
        amqp_vhost_url: str, queue: str) -> None:
    """The error names the migration; `renkei queues migrate` pointed at the vhost rebuilds the
    queue with what it holds, and the intake then starts and takes it in order."""
    async with await aio_pika.connect(amqp_vhost_url) as connection:
        await (await connection.channel()).declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
    await _submit(amqp_vhost_url, queue, [f"<m n='{n}'/>".encode() for n in range(3)])
    taken = Counting()
    intake = AmqpIntake(amqp_vhost_url, MUNICIPALITY, taken, _gate(), queue=queue)
    with pytest.raises(BrokerError, match=r"AMQP intake of 131016 .*inequivalent arg.*renkei queues migrate"):
        await intake.start()

    migrated = await asyncio.to_thread(CliRunner().invoke, main, ["queues", "migrate", queue],
                                       env={"RENKEI_BROKER_URL": amqp_vhost_url})
    assert migrated.exit_code == 0 and f"{queue}: migrated (3 messages)" in migrated.output, migrated.output
    await intake.start()
    try:
        await _until(lambda: len(taken.bodies) == 3)
        assert taken.bodies == [f"<m n='{n}'/>".encode() for n in range(3)]
    finally:
        await intake.stop()
