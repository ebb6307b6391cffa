"""`renkei queues check|migrate` on a real RabbitMQ (a vhost of its own): a queue an earlier
renkei made without `x-single-active-consumer` stops the bus with a clear error, is found by
`check`, and is rebuilt by `migrate` with every message, in order, headers and all; a queue
with a consumer is refused, and an interrupted migration resumes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aio_pika
import pytest
from click.testing import CliRunner, Result
from tenants_support import rabbitmq

from bus.brokers.amqp import AmqpBroker, queue_arguments
from bus.brokers.amqp.migration import MIGRATING
from bus.cli import main
from bus.errors import BrokerError

pytestmark = [pytest.mark.integration, pytest.mark.amqp]
OLD_ARGUMENTS = {"x-queue-type": "quorum"}  # before every queue had a single active consumer
ZEI, KOKUHO = "renkei.dest.zei", "renkei.dest.kokuho"


def _config(tmp_path: Path, url: str, shards: int = 1) -> Path:
    path = tmp_path / "renkei.toml"
    path.write_text(f'[bus]\nstate_dir = "var"\nbroker_url = "{url}"\nshards = {shards}\n', encoding="utf-8")
    return path


def _queues(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["queues", *args, "--config", str(config)], env={"RENKEI_BROKER_URL": None})


async def _fill(url: str, queue: str, n: int, arguments: dict[str, Any] | None = OLD_ARGUMENTS) -> None:
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        if arguments is not None:
            await channel.declare_queue(queue, durable=True, arguments=arguments)
        for i in range(n):
            await channel.default_exchange.publish(aio_pika.Message(
                f"body {i}".encode(), message_id=f"m-{i}", headers={"x-renkei-key": f"k-{i % 7}", "n": i},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue)


async def _drain(url: str, queue: str, n: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        amqp_queue = await channel.get_queue(queue)
        async with amqp_queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                got.append(message)
                if len(got) == n:
                    break
    return got


async def _exists(url: str, queue: str) -> bool:
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
    return True


async def _delete(url: str, *queues: str) -> None:
    async with await aio_pika.connect(url) as connection:
        for queue in queues:
            channel = await connection.channel()
            await channel.queue_delete(queue)


async def _declare_with_the_bus(url: str, queue: str) -> None:
    broker = AmqpBroker(url)
    await broker.connect()
    try:
        await broker.declare(queue)
    finally:
        await broker.close()


def test_an_old_queue_is_found_migrated_with_every_message_in_order(tmp_path: Path, amqp_vhost_url: str) -> None:
    url, n = amqp_vhost_url, 250
    asyncio.run(_fill(url, ZEI, n))
    with pytest.raises(BrokerError, match=r"inequivalent arg 'x-single-active-consumer'.*renkei queues migrate"):
        asyncio.run(_declare_with_the_bus(url, ZEI))  # what `renkei run` says

    config = _config(tmp_path, url)
    checked = _queues(config, "check")
    assert checked.exit_code == 1, checked.output
    assert f"{ZEI}: differs ({n} messages): " in checked.output and "x-single-active-consumer" in checked.output
    assert "renkei.intake: missing" in checked.output  # the bus makes those itself

    migrated = _queues(config, "migrate")
    assert migrated.exit_code == 0, migrated.output
    assert f"{ZEI}: migrated ({n} messages)" in migrated.output
    assert f"{ZEI}: moving: {2 * n}/{2 * n} (" in migrated.output  # progress, plain lines off a terminal
    assert _queues(config, "check").exit_code == 0
    asyncio.run(_declare_with_the_bus(url, ZEI))  # the bus starts on it now
    assert not asyncio.run(_exists(url, ZEI + ".migrating"))
    got = asyncio.run(_drain(url, ZEI, n))
    assert [m.message_id for m in got] == [f"m-{i}" for i in range(n)]  # in order
    assert [m.body for m in got] == [f"body {i}".encode() for i in range(n)]
    assert all(m.headers["n"] == i and m.headers["x-renkei-key"] == f"k-{i % 7}" for i, m in enumerate(got))
    assert all(m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT for m in got)
    asyncio.run(_delete(url, ZEI))


def test_a_single_active_consumer_queue_with_another_argument_is_refused_with_nothing_moved(
        tmp_path: Path, amqp_vhost_url: str) -> None:
    """One day an argument other than x-single-active-consumer may change: such a queue refuses
    basic.get, so it is refused with a clear error, every message still where it was."""
    url, queue = amqp_vhost_url, "renkei.dest.nenkin"
    asyncio.run(_fill(url, queue, 30, arguments={**queue_arguments(), "x-max-length": 100000}))
    config = _config(tmp_path, url)
    assert "inequivalent arg 'x-max-length'" in _queues(config, "check", queue).output
    result = _queues(config, "migrate", queue)
    assert result.exit_code == 1 and "refuses basic.get" in result.output and "Nothing was moved" in result.output
    assert not asyncio.run(_exists(url, queue + ".migrating"))
    assert [m.message_id for m in asyncio.run(_drain(url, queue, 30))] == [f"m-{i}" for i in range(30)]
    asyncio.run(_delete(url, queue))


def test_a_queue_with_a_consumer_is_refused_and_left_alone(tmp_path: Path, amqp_vhost_url: str) -> None:
    url = amqp_vhost_url
    asyncio.run(_fill(url, KOKUHO, 5))

    async def hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        """A running bus's consumer: it holds what it got (acks none here)."""

    async def migrate_while_consumed() -> Result:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=1)
            queue = await channel.get_queue(KOKUHO)
            await queue.consume(hold)
            return await asyncio.to_thread(_queues, _config(tmp_path, url), "migrate", KOKUHO)

    result = asyncio.run(migrate_while_consumed())
    assert result.exit_code == 1
    assert f"{KOKUHO}: busy" in result.output and "stop the bus" in result.output
    assert len(asyncio.run(_drain(url, KOKUHO, 5))) == 5  # all still there
    asyncio.run(_delete(url, KOKUHO))


def test_an_interrupted_migration_resumes(tmp_path: Path, amqp_vhost_url: str) -> None:
    """The old queue deleted, its messages still in <queue>.migrating: check says so, migrate
    finishes (a delay queue, named explicitly, gets its own arguments)."""
    url, queue = amqp_vhost_url, "renkei.dest.kaigo.delay.600000ms"
    asyncio.run(_fill(url, queue + ".migrating", 12))
    config = _config(tmp_path, url)
    checked = _queues(config, "check", queue)
    assert checked.exit_code == 1 and f"{queue}: interrupted (12 messages)" in checked.output
    assert _queues(config, "migrate", queue).exit_code == 0
    assert not asyncio.run(_exists(url, queue + ".migrating"))

    async def arguments_match() -> None:  # declaring with the bus's delay arguments is a no-op now
        broker = AmqpBroker(url)
        await broker.connect()
        try:
            async with broker.admin_channel() as channel:
                await channel.declare_queue(queue, durable=True,
                                            arguments=broker.delay_arguments("renkei.dest.kaigo", 600000))
        finally:
            await broker.close()

    asyncio.run(arguments_match())
    assert [m.message_id for m in asyncio.run(_drain(url, queue, 12))] == [f"m-{i}" for i in range(12)]
    asyncio.run(_delete(url, queue))


def test_a_migration_interrupted_during_its_first_move_keeps_the_order(tmp_path: Path, amqp_vhost_url: str) -> None:
    """The first 3 messages already in <queue>.migrating, the other 5 still in the old queue:
    the rest follows them, and the rebuilt queue holds all 8 in their order."""
    url = amqp_vhost_url
    queue = "renkei.dest.koki"

    async def half_moved() -> None:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            await channel.declare_queue(queue + ".migrating", durable=True, arguments=OLD_ARGUMENTS)
            await channel.declare_queue(queue, durable=True, arguments=OLD_ARGUMENTS)
            for i in range(8):
                await channel.default_exchange.publish(aio_pika.Message(f"body {i}".encode(), message_id=f"m-{i}"),
                                                       routing_key=queue + ".migrating" if i < 3 else queue)

    asyncio.run(half_moved())
    config = _config(tmp_path, url)
    assert "interrupted (8 messages)" in _queues(config, "check", queue).output
    result = _queues(config, "migrate", queue)
    assert result.exit_code == 0 and f"{queue}: migrated (8 messages)" in result.output, result.output
    assert _queues(config, "check", queue).exit_code == 0
    assert [m.message_id for m in asyncio.run(_drain(url, queue, 8))] == [f"m-{i}" for i in range(8)]
    asyncio.run(_delete(url, queue))


def test_a_sharded_queue_is_bound_to_its_exchange_again(tmp_path: Path, amqp_vhost_url: str) -> None:
    """Deleting a queue deletes its bindings: after the migration, publishing to the logical
    queue reaches the migrated shard again."""
    url = amqp_vhost_url
    shard = ZEI + ".shard0"

    async def old_shards() -> None:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(ZEI, "x-consistent-hash", durable=True,
                                                      arguments={"hash-header": "x-renkei-key"})
            for name, arguments in ((shard, OLD_ARGUMENTS), (ZEI + ".shard1", queue_arguments())):
                declared = await channel.declare_queue(name, durable=True, arguments=arguments)
                await declared.bind(exchange, routing_key="1")

    asyncio.run(old_shards())
    asyncio.run(_fill(url, shard, 3, arguments=None))
    result = _queues(_config(tmp_path, url, shards=2), "migrate", shard)
    assert result.exit_code == 0 and f"{shard}: migrated (3 messages)" in result.output

    async def publish_through_the_exchange() -> int:
        broker = AmqpBroker(url, shards=2)
        await broker.connect()
        try:
            from bus.brokers.base import OutgoingMessage

            await broker.publish_many([(ZEI, OutgoingMessage(b"x", f"new-{i}", f"resident-{i}", {}))
                                       for i in range(40)])  # 40 keys: both shards get some
            return (await broker.stats(ZEI)).ready
        finally:
            await broker.close()

    assert asyncio.run(publish_through_the_exchange()) == 43  # none returned as unroutable
    asyncio.run(_delete(url, shard, ZEI + ".shard1"))


def test_a_user_the_broker_refuses_gets_a_broker_error_not_a_traceback(tmp_path: Path, amqp_vhost_url: str) -> None:
    """Queue migration maps RabbitMQ's refusals like the bus does: a user without configure
    permission on the vhost is told ACCESS_REFUSED by `renkei queues check`, exit 1."""
    url = amqp_vhost_url
    asyncio.run(_fill(url, ZEI, 1))
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:])
    name, password = f"reader-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    rabbitmq("user", name, password, vhost, "^$", ".*", ".*")  # configure: nothing
    try:
        reader = urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port}"))
        result = _queues(_config(tmp_path, reader), "check", ZEI)
        assert isinstance(result.exception, SystemExit) and result.exit_code == 1, repr(result.exception)
        assert f"checking the arguments of queue '{ZEI}'" in result.output and "ACCESS_REFUSED" in result.output
    finally:
        rabbitmq("drop-user", name)
        asyncio.run(_delete(url, ZEI))


def test_a_vendors_message_the_migrating_user_may_not_publish_stops_the_move_with_nothing_lost(
        tmp_path: Path, amqp_vhost_url: str) -> None:
    """A copy keeps the message's user_id (the AMQP intake authenticates by it), which RabbitMQ
    accepts only from that user: run by another user, the move stops there, every message kept."""
    url, queue = amqp_vhost_url, "renkei.submit"
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:])
    users = {role: (f"{role}-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex) for role in ("vendor", "mover")}
    for name, password in users.values():
        rabbitmq("user", name, password, vhost)

    def as_user(role: str) -> str:
        name, password = users[role]
        return urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port}"))

    async def submit() -> None:
        async with await aio_pika.connect(as_user("vendor")) as connection:
            channel = await connection.channel()
            await channel.declare_queue(queue, durable=True, arguments=OLD_ARGUMENTS)
            for i, user_id in enumerate((None, users["vendor"][0], None)):
                await channel.default_exchange.publish(aio_pika.Message(f"body {i}".encode(), message_id=f"m-{i}",
                                                                        user_id=user_id), routing_key=queue)

    try:
        asyncio.run(submit())
        config = _config(tmp_path, as_user("mover"))
        result = _queues(config, "migrate", queue)
        assert isinstance(result.exception, SystemExit) and result.exit_code == 1, repr(result.exception)
        assert "user_id" in result.output and "PRECONDITION_FAILED" in result.output
        checked = _queues(config, "check", queue)
        assert f"{queue}: interrupted (3 messages)" in checked.output, checked.output
        held = asyncio.run(_drain(url, queue + MIGRATING, 1)) + asyncio.run(_drain(url, queue, 2))
        assert [m.message_id for m in held] == ["m-0", "m-1", "m-2"]
        assert held[1].user_id == users["vendor"][0]
    finally:
        for name, _ in users.values():
            rabbitmq("drop-user", name)
        asyncio.run(_delete(url, queue, queue + MIGRATING))
