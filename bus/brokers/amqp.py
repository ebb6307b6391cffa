"""The RabbitMQ broker (aio-pika): quorum queues, publisher confirms, mandatory routing.

- One robust connection (`connect_robust`: reconnects and restores channels, QoS and
  consumers). `amqps://` URLs use TLS; aiormq reads `cafile`, `certfile`, `keyfile` and
  `no_verify_ssl` from the URL query, or pass an `ssl_context`.
- Publishing: one channel with publisher confirms and `on_return_raises`; every message is
  persistent and goes through the default exchange with `mandatory=True`, so a queue that
  does not exist makes the broker return it, and the publish raises. `publish_many` sends
  all messages and then awaits all confirms together (pipelined: ~4× the rate of awaiting
  each). A publish goes straight to the channel's aiormq underlay (what aio-pika's
  `Exchange.publish` does after building an `aio_pika.Message`: that object cost ~30 µs per
  publish, ~150 µs of the router's CPU per message at 5 destinations). aiormq matches a
  basic.return to its publish by `message_id`, so two publishes of one message id are never
  in flight at once (the second waits for the first).
- Consuming: a channel per consumer, `basic_qos(prefetch)`; cancelling a consumer cancels
  it at the broker, waits for the dispatcher to settle what it holds, then closes the
  channel (whatever is still unacked goes back to the queue).
- `delivery_count` comes from the quorum queue's `x-delivery-count` header (+1); the
  ordering key travels in the `x-renkei-key` header; both are removed from `headers`.
- Order: RabbitMQ hands out a key's next message while an earlier one is unacked, so the
  dispatcher guards order (base.py): after a requeue, the later messages of that key this
  consumer already holds are requeued behind it (their delivery count rises too) until a
  `basic.qos` round trip (`_fence`) proves nothing older is still on the wire. Across
  several consumers of one queue RabbitMQ keeps no per-key order: give an ordered queue
  one consumer (single active consumer, DESIGN §5).
- `stats`: `ready` and `consumers` from a passive queue declare; `in_flight` counts the
  unsettled deliveries of this process only (the management plugin, which knows all of
  them, is not assumed to be enabled). RabbitMQ 3.10 reports 0 consumers for a quorum
  queue in declare-ok, so this process's own consumers are the floor.
- Order across processes (DESIGN §5): every queue has `x-single-active-consumer`, so however
  many bus processes consume a queue, RabbitMQ feeds one of them and keeps the others as hot
  standbys — which is what keeps a resident's changes in order (RabbitMQ itself keeps no
  per-key order across consumers). To scale out anyway, `shards=N` turns each queue into a
  consistent-hash exchange of that name hashing the `x-renkei-key` header (the resident's
  pseudonym) over N quorum queues `<queue>.shard<i>`, each with its own single active
  consumer: one resident always lands in the same shard (order kept), and N processes share
  the load, one active consumer per shard. `publish`, `consume`, `stats` and the delay
  queues speak of the logical queue; the shards are this module's business.
- Errors: `_mapped` (the one place) turns returns, nacks and confirm timeouts into
  `PublishNotConfirmed`, lost connections into `BrokerUnavailable`, the rest into
  `BrokerError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from ssl import SSLContext
from typing import Any

import aio_pika
import aiormq.exceptions
import orjson
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aiormq.abc import ChannelFrame
from yarl import URL

from bus.brokers.amqp_expedite import delay_queue_names, move_delayed
from bus.brokers.amqp_frames import ack_frame, publish_frames
from bus.brokers.base import Broker, BrokerDescription, Delivery, OutgoingMessage, QueueDescription, QueueStats
from bus.errors import BrokerError, BrokerUnavailable, PublishNotConfirmed
from bus.topology import delay_queue

__all__ = ["ENVELOPE_HEADER", "KEY_HEADER", "QUEUE_ARGUMENTS", "AmqpBroker", "node_urls", "reply_text", "wire_headers"]

log = structlog.get_logger(__name__)


class _RaisedAnyway(logging.Filter):
    """aiormq logs a failed connect at ERROR and then raises it; renkei reports the raise (a
    BrokerUnavailable, its URL's password masked), so the log line was a stray duplicate printed
    before the clean error of every command. Other aiormq records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error when creating transport")


logging.getLogger("aiormq.connection").addFilter(_RaisedAnyway())
KEY_HEADER = "x-renkei-key"
ENVELOPE_HEADER = "x-renkei-envelope"  # the message's headers (the envelope), as one JSON object
QUEUE_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum", "x-single-active-consumer": True}
HASH_EXCHANGE = "x-consistent-hash"
_PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)


class AmqpBroker(Broker):
    """RabbitMQ at `url` (amqp:// or amqps://)."""

    name = "amqp"

    def __init__(
        self,
        url: str,
        *,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        settle_timeout: float = 5.0,
        ssl_context: SSLContext | None = None,
        shards: int = 1,
    ) -> None:
        if not 1 <= shards <= 64:
            raise ValueError(f"shards must be 1..64, got {shards}")
        self.url = url
        self.shards = shards
        self.publish_timeout = publish_timeout
        self.connect_timeout = connect_timeout
        self.settle_timeout = settle_timeout
        self._ssl_context = ssl_context
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._in_flight_ids: dict[str, asyncio.Future[None]] = {}
        self._subscriptions: set[_Subscription] = set()
        self._delay_queues: set[str] = set()
        self._exchanges: set[str] = set()  # sharded queues' exchanges known to exist

    async def connect(self) -> None:
        """Connect to the first node that answers (a URL may list a cluster's nodes:
        ``amqp://user:pw@host1:5672,host2:5672,host3:5672/vhost``)."""
        if self._connection is not None:
            return
        nodes = node_urls(self.url)
        for n in range(len(nodes)):
            order = nodes[n:] + nodes[:n]
            connection = _FailoverConnection(URL(order[0]), failover=order, ssl_context=self._ssl_context,
                                             client_properties={"connection_name": "renkei"})
            try:
                with _mapped(f"connecting to {_safe(order[0])}"):
                    await connection.connect(timeout=self.connect_timeout)
            except BrokerUnavailable:
                if n == len(nodes) - 1:
                    raise
                log.warning("broker node unreachable; trying the next", node=_safe(order[0]))
                continue
            self._connection = connection
            break
        with _mapped(f"connecting to {_safe(self.url)}"):
            self._publisher = await self._connected().channel(publisher_confirms=True, on_return_raises=True)

    async def close(self) -> None:
        connection, self._connection, self._publisher = self._connection, None, None
        for sub in list(self._subscriptions):
            sub.stopping = True
        self._subscriptions.clear()
        if connection is not None:
            with _mapped("closing the connection"):
                await connection.close()

    async def declare(self, queue: str) -> None:
        with _mapped(f"declaring queue {queue!r}"):
            async with self.admin_channel() as channel:
                if self.shards == 1:
                    await channel.declare_queue(queue, durable=True, arguments=QUEUE_ARGUMENTS)
                    return
                exchange = await channel.declare_exchange(queue, HASH_EXCHANGE, durable=True,
                                                          arguments={"hash-header": KEY_HEADER})
                for shard in self._shard_names(queue):
                    declared = await channel.declare_queue(shard, durable=True, arguments=QUEUE_ARGUMENTS)
                    await declared.bind(exchange, routing_key="1")  # equal weights
        self._exchanges.add(queue)

    def _shard_names(self, queue: str) -> list[str]:
        return [queue] if self.shards == 1 else [f"{queue}.shard{i}" for i in range(self.shards)]

    async def _address(self, queue: str) -> tuple[str, str]:
        """(exchange, routing key) of a publish to the logical `queue`."""
        if self.shards == 1 or queue in self._delay_queues:
            return "", queue
        if queue not in self._exchanges:  # publishing to a missing exchange would close the channel
            try:
                async with self.admin_channel() as channel:
                    await channel.get_exchange(queue, ensure=True)
            except aiormq.exceptions.ChannelNotFoundEntity as exc:
                raise PublishNotConfirmed(f"queue {queue!r} was never declared: nothing published") from exc
            self._exchanges.add(queue)
        return queue, "hash"  # the exchange hashes the x-renkei-key header, not the routing key

    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]], *, delay: float = 0.0) -> None:
        if not items:
            return
        if delay > 0:
            items = [(await self._delay_queue(q, delay), m) for q, m in items]
        ids = [m.message_id for _, m in items]
        if len(set(ids)) == len(ids) and not any(i in self._in_flight_ids for i in ids):
            results = await self._publish_batch(items)
        else:  # a message id twice, or already in flight: aiormq matches returns by id, so one at a time
            results = await asyncio.gather(*(self._publish(q, m) for q, m in items), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            first = failures[0]
            if not isinstance(first, BrokerError):
                raise first
            cls = type(first)
            more = f" ({len(failures)} of {len(items)} messages not accepted)" if len(items) > 1 else ""
            raise cls(f"{first}{more}") from first

    async def _publish_batch(self, items: Sequence[tuple[str, OutgoingMessage]]) -> list[BaseException | None]:
        """Publish `items` in one socket write and await their confirms together: what
        `basic_publish` does for each, with one channel lock, one frame write and no drain per
        message (`_send_batch`). The result per item: None, or the renkei error it raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for _, message in items:
            self._in_flight_ids[message.message_id] = done
        try:
            with _mapped(f"publishing {len(items)} messages", publishing=True):
                addresses = [await self._address(q) for q, _ in items]
                channel = await (await self._publishing_channel()).get_underlay_channel()
                outcomes = await _send_batch(channel, [
                    (exchange, routing_key, message)
                    for (exchange, routing_key), (_, message) in zip(addresses, items, strict=True)
                ], self.publish_timeout)
            results: list[BaseException | None] = []
            for (queue, message), outcome in zip(items, outcomes, strict=True):
                if outcome is None:
                    results.append(None)
                    continue
                mapped = (_broker_error(f"publishing {message.message_id} to queue {queue!r}", outcome,
                                        publishing=True) if isinstance(outcome, Exception) else None)
                if mapped is not None:
                    mapped.__cause__ = outcome
                results.append(mapped or outcome)
            return results
        finally:
            for _, message in items:
                self._in_flight_ids.pop(message.message_id, None)
            done.set_result(None)

    @staticmethod
    def _properties(message: OutgoingMessage) -> aiormq.spec.Basic.Properties:
        return aiormq.spec.Basic.Properties(message_id=message.message_id, headers=wire_headers(message),
                                            delivery_mode=_PERSISTENT)

    async def _delay_queue(self, queue: str, delay: float) -> str:
        """The queue where messages for `queue` wait `delay` seconds: a quorum queue whose
        message TTL dead-letters them back into `queue` (at-least-once dead lettering, so a
        node failure between the two queues loses nothing). One queue per (queue, delay):
        the retry tiers are few, and a queue-wide TTL expires messages in order."""
        name = delay_queue(queue, delay)
        millis = max(1, round(delay * 1000))
        if name not in self._delay_queues:
            arguments = self.delay_arguments(queue, millis)
            with _mapped(f"declaring delay queue {name!r}"):
                async with self.admin_channel() as channel:
                    await channel.declare_queue(name, durable=True, arguments=arguments)
            self._delay_queues.add(name)
        return name

    async def expedite(self, queue: str, waits: Sequence[float] = ()) -> list[dict[str, Any]]:
        mine = [name for name in self._delay_queues if name.startswith(f"{queue}.delay.")]
        moved = await move_delayed(self, queue, [*delay_queue_names(queue, waits), *mine])
        return [_unpack(h[ENVELOPE_HEADER]) if ENVELOPE_HEADER in h else
                {k: _text(v) for k, v in h.items() if k != KEY_HEADER} for h in moved]

    def delay_arguments(self, queue: str, millis: int) -> dict[str, Any]:
        """The arguments of the delay queue `<queue>.delay.<millis>ms`."""
        return {
            **QUEUE_ARGUMENTS,
            "x-message-ttl": millis,
            # back into the queue: the default exchange by name, or a sharded queue's exchange
            # (which hashes the x-renkei-key header the message still carries)
            "x-dead-letter-exchange": "" if self.shards == 1 else queue,
            "x-dead-letter-routing-key": queue,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def physical_queues(self, queue: str) -> list[str]:
        """The RabbitMQ queues of the logical `queue` (itself, or its shards)."""
        return self._shard_names(queue)

    async def _publish(self, queue: str, message: OutgoingMessage) -> None:
        while (earlier := self._in_flight_ids.get(message.message_id)) is not None:
            await asyncio.wait([earlier])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight_ids[message.message_id] = done
        try:
            exchange, routing_key = await self._address(queue)
            with _mapped(f"publishing {message.message_id} to queue {queue!r}", publishing=True):
                channel = await (await self._publishing_channel()).get_underlay_channel()
                await channel.basic_publish(
                    message.body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=self._properties(message),
                    mandatory=True,
                    timeout=self.publish_timeout,
                )
        finally:
            del self._in_flight_ids[message.message_id]
            done.set_result(None)

    async def stats(self, queue: str) -> QueueStats:
        ready = consumers = 0
        with _mapped(f"reading the stats of queue {queue!r}"):
            async with self.admin_channel() as channel:
                for name in self._shard_names(queue):
                    result = (await channel.declare_queue(name, passive=True)).declaration_result
                    ready += result.message_count or 0
                    consumers = max(consumers, result.consumer_count or 0)  # per shard: active + standbys
        mine = [s for s in self._subscriptions if s.queue_name == queue]
        in_flight = sum(len(s.unsettled) for s in mine)
        return QueueStats(queue, ready, in_flight, max(consumers, len(mine) // max(1, self.shards)))

    async def describe(self, queues: Sequence[str]) -> BrokerDescription:
        """From passive declares (`stats`), on this broker's connection or, unconnected, on one
        opened for the purpose. Delayed is None: the delay queues (one per delay) cannot be
        listed over AMQP. In flight is this instance's unsettled count where its own
        subscriptions are every consumer of the queue, None where others consume (RabbitMQ
        tells their unacknowledged count only through its management API)."""
        opened = self._connection is None
        found: dict[str, QueueDescription] = {}
        try:
            if opened:
                await self.connect()
            for q in queues:
                try:
                    stats = await self.stats(q)
                except BrokerUnavailable:
                    raise
                except BrokerError:  # the passive declare failed: no such queue
                    found[q] = QueueDescription(q, False, 0, None, 0, 0)
                    continue
                own = len([s for s in self._subscriptions if s.queue_name == q]) // self.shards
                in_flight = stats.in_flight if stats.consumers <= own else None
                found[q] = QueueDescription(q, True, stats.ready, None, in_flight, stats.consumers)
        except BrokerUnavailable as exc:
            return BrokerDescription(self.name, _safe(self.url), False,
                                     {q: QueueDescription.unknown(q) for q in queues}, str(exc))
        finally:
            if opened:
                with contextlib.suppress(BrokerError):
                    await self.close()
        return BrokerDescription(self.name, _safe(self.url), True, found)

    async def _start_consumer(
        self, queue: str, on_delivery: Callable[[Delivery], None], prefetch: int
    ) -> Callable[[], Awaitable[None]]:
        connection = self._connected()
        with _mapped(f"consuming from queue {queue!r}"):
            subs = []
            # each shard gets the whole prefetch (quorum queues have no channel-wide QoS): a key's
            # messages are all in one shard, so its consumer can hold as many as without shards
            per_shard = prefetch
            for name in self._shard_names(queue):
                channel = await connection.channel(publisher_confirms=False)
                await channel.set_qos(prefetch_count=per_shard)
                amqp_queue = await channel.get_queue(name, ensure=True)
                sub = _Subscription(self, channel, amqp_queue, on_delivery, per_shard, logical=queue)
                sub.tag = await amqp_queue.consume(sub.on_message)
                self._subscriptions.add(sub)
                subs.append(sub)

        async def stop() -> None:
            await asyncio.gather(*(sub.stop() for sub in subs))

        return stop

    async def _settle(self, delivery: Delivery, ok: bool) -> None:
        sub, message = delivery.token
        try:
            if ok and _ack_now(message):
                return
            with _mapped(f"{'acking' if ok else 'requeueing'} {delivery.message_id}"):
                # Bounded: after a lost connection, aiormq waits forever to queue the ack of a
                # delivery of the old channel (the dead connection's frame queue is full and
                # nobody drains it), which hung the dispatcher's workers and `cancel()` (found
                # by tests/faults, the network cut). Shielded: on a connection that is only
                # slow (blocked by an alarm) the frame still goes out after the timeout.
                settle = message.ack() if ok else message.nack(requeue=True)
                await asyncio.wait_for(asyncio.shield(settle), self.settle_timeout)
        finally:
            sub.settled(message)

    async def _fence(self, delivery: Delivery) -> None:
        sub, _ = delivery.token
        with _mapped("fencing a requeue"):  # basic.qos is answered after the nack is processed
            underlay = await sub.channel.get_underlay_channel()
            await underlay.basic_qos(prefetch_count=sub.prefetch)

    # -- helpers ---------------------------------------------------------------------------

    def _connected(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise BrokerUnavailable(f"not connected to {_safe(self.url)} (call connect())")
        return self._connection

    async def _publishing_channel(self) -> AbstractChannel:
        if self._publisher is None or self._publisher.is_closed:
            connection = self._connected()
            if not connection.connected.is_set():  # reconnecting (to this node, or the next one)
                try:
                    await asyncio.wait_for(connection.connected.wait(), self.publish_timeout)
                except TimeoutError:
                    raise BrokerUnavailable(f"not connected to {_safe(self.url)}: reconnecting") from None
            if self._publisher is None or self._publisher.is_closed:  # else restored with the connection
                self._publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return self._publisher

    @asynccontextmanager
    async def admin_channel(self, *, confirms: bool = False) -> AsyncIterator[AbstractChannel]:
        """A short-lived channel for declares: a failed one closes it, not the publisher.

        Closing it is best effort and never replaces what is already on its way out: aio-pika's
        own ``async with channel`` awaits ``close()`` on the way out, and on a lost connection
        that raises, so a cancellation (a process stopping) became a BrokerUnavailable, and a
        loop that retries on BrokerError never saw that it had been asked to stop (found by
        tests/faults: a worker that did not stop after the broker was killed -9)."""
        channel = self._connected().channel(publisher_confirms=confirms, on_return_raises=confirms)
        await channel.initialize()
        try:
            yield channel
        finally:
            try:
                await channel.close()
            except Exception as exc:  # the connection is gone, and the channel with it
                log.debug("admin channel close failed", error=f"{type(exc).__name__}: {exc}")


class _FailoverConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection over the nodes of a cluster: after a lost connection the
    reconnect goes to the next node (aio-pika itself reconnects to its one URL), and restores
    the channels, QoS and consumers there. Quorum queues live on every node, so a consumer
    resumes where the lost node left off; what it had unacked is redelivered (idempotent sinks)."""

    def __init__(self, url: URL, *, failover: Sequence[str], **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._nodes = [URL(u) for u in failover] or [url]
        self._node = 0

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if len(self._nodes) > 1 and not self._close_called:
            self._node = (self._node + 1) % len(self._nodes)
            self.url = self._nodes[self._node]
            log.warning("broker connection lost; reconnecting to the next node", node=_safe(str(self.url)))
        await super()._on_connection_close(closing)


def node_urls(url: str) -> list[str]:
    """One URL per node of ``amqp://user:pw@h1:p1,h2:p2/vhost?query`` (a single-node URL as it is)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    credentials, at, hosts = authority.rpartition("@")
    return [f"{scheme}{sep}{credentials}{at}{host.strip()}{slash}{path}" for host in hosts.split(",") if host.strip()]


class _Subscription:
    def __init__(
        self,
        broker: AmqpBroker,
        channel: AbstractChannel,
        queue: AbstractQueue,
        on_delivery: Callable[[Delivery], None],
        prefetch: int,
        logical: str,
    ) -> None:
        self.broker, self.channel, self.queue, self.on_delivery = broker, channel, queue, on_delivery
        self.queue_name = logical  # the queue the bus asked for (a shard's name is queue.name)
        self.prefetch = prefetch
        self.tag = ""
        self.unsettled: set[AbstractIncomingMessage] = set()
        self.all_settled = asyncio.Event()
        self.stopping = False

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        # no await before on_delivery: deliveries reach the dispatcher in arrival order
        self.unsettled.add(message)
        self.on_delivery(_delivery(message, self))

    def settled(self, message: AbstractIncomingMessage) -> None:
        self.unsettled.discard(message)
        if not self.unsettled:
            self.all_settled.set()

    async def stop(self) -> None:
        self.stopping = True
        try:
            with _mapped(f"cancelling a consumer of {self.queue_name!r}"):
                await self.queue.cancel(self.tag)
            for _ in range(3):  # deliveries that raced the cancel reach the dispatcher first
                await asyncio.sleep(0)
            while self.unsettled and not self.channel.is_closed:
                self.all_settled.clear()
                await self.all_settled.wait()
        except BrokerError as exc:
            log.warning("consumer cancel incomplete; unacked messages return to the queue", error=str(exc))
        finally:
            self.broker._subscriptions.discard(self)
            if not self.channel.is_closed:
                try:
                    with _mapped("closing a consumer channel"):
                        await self.channel.close()
                except BrokerError as exc:
                    log.debug("consumer channel close failed", error=str(exc))


#: RabbitMQ's own dead-lettering record, added when a message comes back from a delay queue:
#: `x-death` is a list of tables holding timestamps, not JSON (the contract's header values
#: are), so holding or dead-lettering a message that had been through a delay tier failed
#: on json.dumps, and the handler looped on it (found by tests/faults, the poison message).
_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-")


def _delivery(message: AbstractIncomingMessage, sub: _Subscription) -> Delivery:
    headers = dict(message.headers or {})
    packed = headers.pop(ENVELOPE_HEADER, None)
    if packed is not None:  # renkei's own publish; other publishers (vendors' kombu) send plain headers
        headers.update(_unpack(packed))
    key = _text(headers.pop(KEY_HEADER, ""))
    returned = headers.pop("x-delivery-count", None)
    count = int(returned) + 1 if isinstance(returned, int) else (2 if message.redelivered else 1)
    return Delivery(
        body=message.body,
        message_id=message.message_id or "",
        key=key,
        headers={k: _text(v) for k, v in headers.items() if not k.startswith(_DEATH_HEADERS)},
        redelivered=bool(message.redelivered) or count > 1,
        delivery_count=count,
        token=(sub, message),
    )


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def wire_headers(message: OutgoingMessage) -> dict[str, Any]:
    """The AMQP headers of a renkei publish. The message's headers (the envelope) travel as
    one JSON object in `ENVELOPE_HEADER`: pamqp encodes and decodes a header table in Python,
    and the 14 entries of a routed envelope cost ~50 µs a publish that way. The ordering key
    has its own header, which a sharded queue's consistent-hash exchange hashes."""
    return {ENVELOPE_HEADER: orjson.dumps(message.headers).decode(), KEY_HEADER: message.key}


def _unpack(packed: Any) -> dict[str, Any]:
    """The headers packed by `wire_headers`. Anything else is kept as it came (as text), so
    the handler fails on the missing envelope and the message takes the poison path to the
    dead letters, where an operator can see it; raising here would leave it unacked."""
    try:
        value = orjson.loads(packed)
    except (TypeError, ValueError):
        value = None
    return value if isinstance(value, dict) else {ENVELOPE_HEADER: str(_text(packed))[:1000]}


#: what `_send_batch` uses of aiormq's channel, beside its public API (aiormq 7.2's
#: `Channel.basic_publish` does the same per message); without it, publishes go one by one
_BATCH_INTERNALS = ("lock", "delivery_tag", "confirmations", "message_id_delivery_tag", "write_queue",
                    "max_content_size", "number", "create_future")
_ACK_INTERNALS = ("write_queue", "number")
#: (channel class, internals) -> whether its channels have them: looked up once per class
_HAS: dict[tuple[type, tuple[str, ...]], bool] = {}


def _has(channel: object, internals: tuple[str, ...]) -> bool:
    key = (type(channel), internals)
    found = _HAS.get(key)
    if found is None:
        found = _HAS[key] = all(hasattr(channel, name) for name in internals)
    return found


async def _send_batch(channel: aiormq.abc.AbstractChannel, items: Sequence[tuple[str, str, OutgoingMessage]],
                      confirm_within: float) -> list[BaseException | None]:
    """Publish (exchange, routing key, message) items, mandatory and persistent, on a channel
    with publisher confirms: under the channel's lock, give each a delivery tag and a
    confirmation (matched to a basic.return by message id, as aiormq does), write all their
    frames at once (`amqp_frames.publish_frames`), then await the confirms together. Per
    item: None when confirmed, else the aiormq error (a return, a nack, a closed channel).
    A timeout raises TimeoutError.

    aiormq's `basic_publish` takes the lock, marshals through pamqp and awaits the socket
    drain for every message (~140 µs of CPU each); this is ~40 µs."""
    if not _has(channel, _BATCH_INTERNALS):  # another aiormq: the public way
        results = await asyncio.gather(*(
            channel.basic_publish(message.body, exchange=exchange, routing_key=routing_key, mandatory=True,
                                  properties=AmqpBroker._properties(message), timeout=confirm_within)
            for exchange, routing_key, message in items), return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]
    ch: Any = channel
    confirmations: list[asyncio.Future[Any]] = []
    async with asyncio.timeout(confirm_within):
        async with ch.lock:
            if channel.is_closed:
                raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed")
            first_tag = ch.delivery_tag
            try:
                payload = b"".join([
                    publish_frames(ch.number, exchange, routing_key, message.body, message.message_id,
                                   wire_headers(message), ch.max_content_size)
                    for exchange, routing_key, message in items])
                for _, _, message in items:
                    ch.delivery_tag += 1
                    confirmation = ch.create_future()
                    ch.confirmations[ch.delivery_tag] = confirmation
                    ch.message_id_delivery_tag[message.message_id] = ch.delivery_tag
                    confirmations.append(confirmation)
                await ch.write_queue.put(ChannelFrame(payload=payload, should_close=False))
            except BaseException:  # nothing went out: give the tags back, as basic_publish does
                ch.delivery_tag = first_tag
                for tag, (_, _, message) in enumerate(items[: len(confirmations)], first_tag + 1):
                    ch.confirmations.pop(tag, None)
                    if ch.message_id_delivery_tag.get(message.message_id) == tag:
                        ch.message_id_delivery_tag.pop(message.message_id)
                for confirmation in confirmations:
                    confirmation.cancel()
                raise
            for tag, (confirmation, (_, _, message)) in enumerate(zip(confirmations, items, strict=True),
                                                                   first_tag + 1):
                confirmation.add_done_callback(partial(_forget_message_id, ch, message.message_id, tag))
        outcomes = await asyncio.gather(*confirmations, return_exceptions=True)
    return [o if isinstance(o, BaseException) else None for o in outcomes]


def _ack_now(message: AbstractIncomingMessage) -> bool:
    """Queue the basic.ack frame at once when the connection's frame buffer has room (the
    usual case): aiormq's `basic_ack` awaits the socket drain of every ack, ~40 µs a message.
    False when that cannot be done here (a closed channel, a full buffer, another aiormq):
    the caller then acks the bounded way. An ack lost with its connection is a redelivery."""
    try:
        channel: Any = message.channel  # aio-pika raises on a closed channel
    except aiormq.exceptions.ChannelInvalidStateError:
        return False
    tag = message.delivery_tag
    if tag is None or not _has(channel, _ACK_INTERNALS):
        return False
    try:
        channel.write_queue.put_nowait(ChannelFrame(payload=ack_frame(channel.number, tag), should_close=False))
    except asyncio.QueueFull:
        return False
    return True


def _forget_message_id(channel: Any, message_id: str, tag: int, _: object) -> None:
    if channel.message_id_delivery_tag.get(message_id) == tag:
        channel.message_id_delivery_tag.pop(message_id)


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


@contextmanager
def _mapped(doing: str, *, publishing: bool = False) -> Iterator[None]:
    """The one place aio-pika/aiormq errors become renkei's broker errors."""
    try:
        yield
    except BrokerError:
        raise
    except Exception as exc:
        if _cancelling():
            # the task was cancelled and aio-pika, cleaning up, raised something else in place
            # of the CancelledError: stopping wins, or a caller retrying on BrokerError never stops
            raise asyncio.CancelledError(f"{doing}: cancelled") from exc
        mapped = _broker_error(doing, exc, publishing=publishing)
        if mapped is None:
            raise
        raise mapped from exc


def _cancelling() -> bool:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop
        return False
    return task is not None and task.cancelling() > 0


def _broker_error(doing: str, exc: Exception, *, publishing: bool) -> BrokerError | None:
    """Renkei's error for an aio-pika/aiormq one; None for an error that is not the broker's."""
    if isinstance(exc, aiormq.exceptions.PublishError):  # basic.return: no queue took it
        return PublishNotConfirmed(f"{doing}: returned as unroutable ({reply_text(exc, 'no route')}); "
                                   "declare the queue first")
    if isinstance(exc, aiormq.exceptions.DeliveryError):  # basic.nack
        return PublishNotConfirmed(f"{doing}: the broker nacked it; publish again")
    if isinstance(exc, TimeoutError):
        if publishing:
            return PublishNotConfirmed(f"{doing}: not confirmed in time; publish again")
        return BrokerUnavailable(f"{doing}: timed out")
    if isinstance(exc, (aiormq.exceptions.ChannelNotFoundEntity, aiormq.exceptions.ChannelPreconditionFailed)):
        if "inequivalent arg" in str(exc):  # made by an earlier renkei, or by hand
            return BrokerError(f"{doing}: {exc}; the queue exists with other arguments: stop the bus and run "
                               "`renkei queues migrate` (it keeps every message)")
        return BrokerError(f"{doing}: {exc}")
    if isinstance(exc, (aiormq.exceptions.AMQPConnectionError, aiormq.exceptions.ChannelInvalidStateError,
                        aiormq.exceptions.ChannelClosed, ConnectionError, OSError)):
        return BrokerUnavailable(f"{doing}: {type(exc).__name__}: {exc}")
    if isinstance(exc, aiormq.exceptions.AMQPError):
        return BrokerError(f"{doing}: {type(exc).__name__}: {exc}")
    if isinstance(exc, RuntimeError) and ("closed" in str(exc) or "not opened" in str(exc)):
        # aiormq: "<Connection ...> closed"; aio-pika: "Connection was not opened", while it reconnects
        return BrokerUnavailable(f"{doing}: the connection is closed (reconnecting)")
    return None


def reply_text(exc: Exception, default: str) -> str:
    """What the broker said (the reply text of the frame an aiormq error carries)."""
    frame = getattr(exc, "frame", None)
    text = getattr(frame, "reply_text", None)
    return str(text) if text else default
