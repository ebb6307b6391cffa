"""The broker contract on RabbitMQ (a real node: `bash scripts/test.sh` starts one), on the
fast path (bus/brokers/amqp/fastpath.py) and on the public aio-pika/aiormq path alike, plus
what only it must prove: a publish the broker does not confirm in time raises."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from broker_cases import BrokerContract, MakeBroker, Recorder, eventually, message, unique_queue

from bus.brokers import open_broker
from bus.brokers.amqp import AmqpBroker
from bus.brokers.base import Broker
from bus.errors import BrokerError, BrokerUnavailable, PublishNotConfirmed

pytestmark = pytest.mark.amqp


@pytest.fixture(params=[True, False], ids=["fast-path", "public-path"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Every case runs on both ways to the wire (`[bus] amqp_fast_path`)."""
    return bool(request.param)


async def drop(amqp_url: str, name: str, suffixes: tuple[str, ...], *, exchange: bool = False) -> None:
    """Delete the queues `name` + each suffix (and the exchange `name`) that a test made."""
    async with await aio_pika.connect(amqp_url) as connection:
        for suffix in suffixes:
            channel = await connection.channel()  # a failed delete closes its channel
            with contextlib.suppress(Exception):
                await channel.queue_delete(name + suffix)
        if exchange:
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(name)


class TestAmqpBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self, amqp_url: str, fast_path: bool) -> MakeBroker:
        return lambda: AmqpBroker(amqp_url, fast_path=fast_path)

    @pytest.fixture
    def make_unreachable(self) -> MakeBroker:
        return lambda: AmqpBroker("amqp://renkei:secret@127.0.0.1:1/", connect_timeout=2)

    counts_delayed = False

    @pytest.fixture
    async def queue(self, amqp_url: str) -> AsyncIterator[str]:  # and delete it afterwards
        name = unique_queue()
        yield name
        await drop(amqp_url, name, ("", ".never-declared", ".wait"))


class TestShardedAmqpBroker(BrokerContract):
    """The same contract with each queue spread over 3 consistent-hash shards."""

    @pytest.fixture
    def make_broker(self, amqp_url: str, fast_path: bool) -> MakeBroker:
        return lambda: AmqpBroker(amqp_url, shards=3, fast_path=fast_path)

    @pytest.fixture
    def make_unreachable(self) -> MakeBroker:
        return lambda: AmqpBroker("amqp://renkei:secret@127.0.0.1:1/", connect_timeout=2, shards=3)

    counts_delayed = False

    @pytest.fixture
    async def queue(self, amqp_url: str) -> AsyncIterator[str]:
        name = unique_queue()
        yield name
        await drop(amqp_url, name, (".shard0", ".shard1", ".shard2", ".wait"), exchange=True)

    async def test_stats_count_ready_and_in_flight_messages(self, broker: Broker, declared: str) -> None:
        """Prefetch is per shard: quorum queues have no channel-wide QoS."""
        await broker.publish_many([(declared, message(n, key=f"r{n}")) for n in range(9)])
        await eventually(lambda: _counts(broker, declared, (9, 0)))
        handler = Recorder()
        handler.gate = asyncio.Event()
        consumer = await broker.consume(declared, handler, concurrency=2, prefetch=1)  # 1 per shard
        await eventually(lambda: len(handler.seen) == 2)

        async def bounded() -> bool:
            stats = await broker.stats(declared)
            return stats.ready + stats.in_flight == 9 and 2 <= stats.in_flight <= 3

        await eventually(bounded)
        handler.gate.set()
        await eventually(lambda: len(handler.done) == 9)
        await consumer.cancel()
        await eventually(lambda: _counts(broker, declared, (0, 0)))


async def _counts(broker: Broker, queue: str, expected: tuple[int, int]) -> bool:
    stats = await broker.stats(queue)
    return (stats.ready, stats.in_flight) == expected


async def test_a_resident_always_lands_in_one_shard_and_the_shards_share_the_residents(amqp_url: str) -> None:
    broker = AmqpBroker(amqp_url, shards=3)
    await broker.connect()
    name = unique_queue()
    try:
        await broker.declare(name)
        await broker.publish_many([(name, message(n, key=f"resident-{n % 30}")) for n in range(90)])
        where: dict[str, set[int]] = {}
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            for shard in range(3):  # quorum queues with a single active consumer allow no basic.get
                queue = await channel.declare_queue(f"{name}.shard{shard}", passive=True)

                async def take(got: aio_pika.abc.AbstractIncomingMessage, shard: int = shard) -> None:
                    key = got.headers["x-renkei-key"]
                    where.setdefault(key.decode() if isinstance(key, bytes) else str(key), set()).add(shard)
                    await got.ack()

                await queue.consume(take)
            await eventually(lambda: sum(len(s) for s in where.values()) >= 30 and len(where) == 30)
            await asyncio.sleep(0.3)
        assert len(where) == 30
        assert all(len(shards) == 1 for shards in where.values())  # one resident, one shard
        assert len({next(iter(s)) for s in where.values()}) == 3  # and every shard has some
    finally:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            for shard in range(3):
                await channel.queue_delete(f"{name}.shard{shard}")
            await channel.exchange_delete(name)
        await broker.close()


class Proxy:
    """A TCP proxy between client and broker. It can stop forwarding the client's bytes (the
    broker never sees a publish: as a blocked or stalled connection looks), or be cut: its
    connections closed, new ones refused (as a node that went down looks)."""

    @classmethod
    def to(cls, amqp_url: str) -> Proxy:
        parts = urlsplit(amqp_url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5672)

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.writers += [writer, up_writer]
        upstream = self._pipe(reader, up_writer, gated=True)
        downstream = self._pipe(up_reader, writer, gated=False)
        await asyncio.gather(upstream, downstream, return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gated: bool) -> None:
        try:
            while data := await reader.read(65536):
                if gated:
                    await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def cut(self) -> None:
        await self.stop()
        for writer in self.writers:
            writer.close()


async def test_a_publish_not_confirmed_within_the_publish_timeout_raises(amqp_url: str, fast_path: bool) -> None:
    proxy = Proxy.to(amqp_url)
    broker = AmqpBroker(_url_at(amqp_url, await proxy.start()), publish_timeout=0.3, fast_path=fast_path)
    await broker.connect()
    queue = unique_queue()
    try:
        await broker.declare(queue)
        await broker.publish(queue, message(1))
        proxy.flowing.clear()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(PublishNotConfirmed, match="not confirmed in time"):
            await broker.publish_many([(queue, message(n)) for n in range(2, 5)])
        assert loop.time() - started < 3
    finally:
        proxy.flowing.set()
        with contextlib.suppress(Exception):
            async with await aio_pika.connect(amqp_url) as connection:
                await (await connection.channel()).queue_delete(queue)
        await broker.close()
        await proxy.stop()


async def test_connecting_to_a_closed_port_raises_broker_unavailable() -> None:
    broker = AmqpBroker("amqp://guest:guest@127.0.0.1:9/", connect_timeout=2)
    with pytest.raises(BrokerUnavailable):
        await broker.connect()


def test_open_broker_picks_rabbitmq_for_amqp_and_amqps_urls() -> None:
    assert isinstance(open_broker("amqp://guest:guest@127.0.0.1:5672/"), AmqpBroker)
    assert isinstance(open_broker("amqps://user:pw@rabbit.example:5671/%2F"), AmqpBroker)


def test_a_cluster_url_names_each_node_with_the_same_credentials_vhost_and_options() -> None:
    from bus.brokers.amqp import node_urls

    assert node_urls("amqp://u:p@h1:5681,h2:5682, h3:5683/renkei?heartbeat=30") == [
        "amqp://u:p@h1:5681/renkei?heartbeat=30", "amqp://u:p@h2:5682/renkei?heartbeat=30",
        "amqp://u:p@h3:5683/renkei?heartbeat=30"]
    assert node_urls("amqps://u:p@one:5671/") == ["amqps://u:p@one:5671/"]


async def test_the_broker_connects_to_the_first_node_that_answers(amqp_url: str) -> None:
    """A cluster URL whose first node is down: the next one is used."""
    broker = AmqpBroker(_url_at(amqp_url, socket_port(), urlsplit(amqp_url).port or 5672), connect_timeout=3)
    await broker.connect()
    try:
        name = unique_queue()
        await broker.declare(name)
        await broker.publish(name, message(1))
        assert (await broker.stats(name)).ready == 1
    finally:
        await broker.close()
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(name)


def _url_at(amqp_url: str, *ports: int) -> str:
    """`amqp_url` pointed at 127.0.0.1 on `ports` (several: a cluster URL), same credentials."""
    parts = urlsplit(amqp_url)
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@{hosts}"))


def socket_port() -> int:
    """A loopback port nobody listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_lost_node_is_replaced_by_the_next_one_of_the_cluster_url(amqp_url: str, fast_path: bool) -> None:
    """The robust connection reconnects to the next node (a public close callback points it
    there) and publishing resumes on it."""
    proxy = Proxy.to(amqp_url)
    first, second = await proxy.start(), urlsplit(amqp_url).port or 5672
    broker = AmqpBroker(_url_at(amqp_url, first, second), connect_timeout=3, fast_path=fast_path)
    await broker.connect()
    name = unique_queue()
    try:
        await broker.declare(name)
        await broker.publish(name, message(1))
        assert broker.connection().url.port == first
        await proxy.cut()
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            try:
                await broker.publish(name, message(2))
                break
            except BrokerError:
                assert asyncio.get_running_loop().time() < deadline, "no publish within 30 s of the cut"
                await asyncio.sleep(0.2)
        assert broker.connection().url.port == second
        await eventually(lambda: _ready_at_least(broker, name, 2))
    finally:
        await broker.close()
        await proxy.cut()
        async with await aio_pika.connect(amqp_url) as connection:
            await (await connection.channel()).queue_delete(name)


async def _ready_at_least(broker: Broker, queue: str, count: int) -> bool:
    return (await broker.stats(queue)).ready >= count
