"""RabbitMQ: a retry waits in `<queue>.wait` until it is due, and the bus moves it back (issue 15).

A delayed publish (a retry tier) goes to `<queue>.wait` (`bus.topology.wait_queue`: a quorum
queue like every other, single active consumer, no TTL) carrying its due time in `DUE_HEADER`.
Every process consuming `<queue>` runs a `Mover` on that wait queue: RabbitMQ makes one of them
the active consumer and keeps the others as standbys. The active mover holds up to `HOLD`
messages unacknowledged and, at each one's due time, publishes a copy into `<queue>` (its hash
exchange when sharded) with a publisher confirm, then acks the original. A crash in between
leaves the change in both places, which the deliver stage's idempotency absorbs (at least
once, never lost). When the mover's channel or process is lost, what it held goes back to the
wait queue and to whichever mover is active next, which releases it when due.

The copies go on a channel of their own, apart from the one the mover consumes on, and a copy
nacked or not confirmed in time replaces that channel (`publishing.wedged`): after the node
leading the queues was killed, RabbitMQ 3.10 nacked every later publish of a mover's channel
for minutes on end (the cluster suite, December 2026), as it once did a router's
(publishing.py), and the retries the mover held waited for ever.

Why not a TTL that dead-letters into `<queue>` (the design until December 2026, kept for the
old `<queue>.delay.<ms>ms` queues, expedite.py): that moves every retry through a quorum queue's
internal at-least-once dead-letter worker, and after a node was killed the cluster suite found
retries stranded in a delay queue for minutes (RabbitMQ issue 16652: the worker's supervisor
gives up during leadership churn; only a restart of the queue recovers it). A mover is an
ordinary consumer, which the cluster already fails over like every other.

Order: a resident has at most one change retrying (the deliver stage holds its later ones), so a
mover releases by due time, not in queue order; one wait queue serves every delay.

`renkei retry now` (`expedite`): a marker message (`MARK_HEADER`) naming a reply queue. The
active mover releases everything it holds (all that came before the marker) and answers with
their headers. The asking process runs a mover of its own meanwhile: with no other mover
running it is the active one, and answers itself.

A process runs movers for the queues it consumes and expects retries for (`expect_delays`:
the deliver stage's own queue) or first delays a message to; a mover that cannot consume yet
(the broker failing over) tries again every `LOOK` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
import uuid
from typing import Any

import aio_pika
import aiormq.exceptions
import orjson
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection

from bus.brokers.amqp.errors import mapped
from bus.brokers.amqp.publishing import wedged
from bus.brokers.amqp.wire import DUE_HEADER, ENVELOPE_HEADER, KEY_HEADER, text, unpack
from bus.errors import BrokerError
from bus.tasks import stop_task
from bus.topology import wait_queue

__all__ = ["CONFIRM_WITHIN", "HOLD", "LOOK", "MARK_HEADER", "Mover", "ask_to_release", "moved_headers"]

log = structlog.get_logger(__name__)

CONFIRM_WITHIN = 10.0  # seconds for a copy's publisher confirm (AmqpBroker's publish_timeout)
HOLD = 5000  # messages a mover holds at once (a destination's residents retrying at one time)
LOOK = 5.0  # seconds before a mover that could not consume its wait queue tries again
MARK_HEADER = "x-renkei-release-all"
_AGAIN = 1.0  # seconds before a release that failed on an open channel is tried again
#: headers a queue adds on the way out, and the wait's own: a copy carries none of them
_DROPPED = ("x-delivery-count", DUE_HEADER)


def moved_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """What a moved message's AMQP `headers` say: its envelope, else its plain headers."""
    if ENVELOPE_HEADER in headers:
        return unpack(headers[ENVELOPE_HEADER])
    return {k: text(v) for k, v in headers.items() if k not in (KEY_HEADER, DUE_HEADER)}


class Mover:
    """The mover of `wait_queue(queue)` in one process (`start`, `stop`)."""

    def __init__(self, connection: AbstractRobustConnection, queue: str, *, shards: int, hold: int = HOLD,
                 timeout: float = CONFIRM_WITHIN) -> None:
        self.connection, self.queue, self.shards, self.hold, self.timeout = connection, queue, shards, hold, timeout
        self.name = wait_queue(queue)
        self.released = 0  # copies confirmed into the queue (for tests and the logs)
        self._held: list[tuple[float, int, AbstractIncomingMessage]] = []  # a heap of (due, n, message)
        self._marks: list[AbstractIncomingMessage] = []
        self._count = itertools.count()
        self._wake = asyncio.Event()
        self._channel: AbstractChannel | None = None  # the one it consumes on
        self._out: AbstractChannel | None = None  # the one its copies go on (`_outlet`)
        self._target: AbstractExchange | None = None  # on `_out`
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"mover {self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)  # again and again: a publish that fails as it is cancelled is caught in _release
        channel, self._channel = self._channel, None
        if channel is not None:  # what it held goes back to the wait queue
            await _close_quietly(channel)
        await self._drop_outlet()

    async def _run(self) -> None:
        while not await self._open():
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), LOOK)
            except TimeoutError:
                pass
        while True:
            self._wake.clear()
            if self._marks:
                await self._answer_marks()
            elif self._held and self._held[0][0] <= time.time():
                await self._release(heapq.heappop(self._held)[2])
            else:
                wait = self._held[0][0] - time.time() if self._held else None
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass

    async def _open(self) -> bool:
        """Consume the wait queue; False while it does not exist (or cannot be consumed yet)."""
        try:
            with mapped(f"consuming wait queue {self.name!r}"):
                channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
                try:
                    await channel.set_qos(prefetch_count=self.hold)
                    source = await channel.get_queue(self.name, ensure=True)  # passive: a retry declares it
                    await source.consume(self._on_message)
                except aiormq.exceptions.ChannelNotFoundEntity:
                    await _close_quietly(channel)
                    return False
                except BaseException:
                    await asyncio.shield(_close_quietly(channel))
                    raise
        except BrokerError as exc:
            log.warning("cannot consume a wait queue yet; trying again", queue=self.name, error=str(exc))
            return False
        self._channel = channel
        return True

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        headers = message.headers or {}
        if headers.get(MARK_HEADER):
            self._marks.append(message)
        else:
            heapq.heappush(self._held, (_due(headers.get(DUE_HEADER)), next(self._count), message))
        self._wake.set()

    async def _answer_marks(self) -> None:
        """Release everything held (all that came before the marks), then answer each mark."""
        moved: list[dict[str, Any]] = []
        held, self._held = sorted(self._held), []
        for _, _, message in held:
            if await self._release(message):
                moved.append(moved_headers(dict(message.headers or {})))
        marks, self._marks = self._marks, []
        for mark in marks:
            if mark.channel.is_closed or self._channel is None:
                continue  # delivered again, to whichever mover is active then
            try:
                if mark.reply_to:
                    await self._channel.default_exchange.publish(
                        aio_pika.Message(orjson.dumps(moved), correlation_id=mark.correlation_id),
                        routing_key=mark.reply_to, mandatory=False)
                await mark.ack()
            except Exception as exc:
                log.warning("could not answer a release request", queue=self.name, error=type(exc).__name__)

    async def _release(self, message: AbstractIncomingMessage) -> bool:
        """Copy `message` into the queue (confirmed), then ack it; True when it was moved."""
        if message.channel.is_closed:
            return False  # its channel is gone: it is delivered again, to whichever mover is active
        headers = {k: v for k, v in (message.headers or {}).items() if k not in _DROPPED}
        copy = aio_pika.Message(message.body, headers=headers, message_id=message.message_id,
                                content_type=message.content_type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        try:
            target = await self._outlet()
            await target.publish(copy, routing_key=self.queue, mandatory=True, timeout=self.timeout)
            await message.ack()
        except Exception as exc:  # not confirmed, or the channel went: tried again, or delivered again
            if wedged(exc):  # its next copy goes on a new channel
                await self._drop_outlet()
            if not message.channel.is_closed:
                heapq.heappush(self._held, (time.time() + _AGAIN, next(self._count), message))
            log.warning("could not move a due retry back yet", queue=self.name, error=type(exc).__name__,
                        channel_replaced=wedged(exc))
            return False
        self.released += 1
        return True

    async def _outlet(self) -> AbstractExchange:
        """Where copies go: the queue's exchange (the default one unsharded) on the publishing channel,
        opened when there is none or it closed."""
        if self._out is None or self._out.is_closed or self._target is None:
            await self._drop_outlet()
            self._out = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
            if self.shards == 1:
                self._target = self._out.default_exchange
            else:
                self._target = await self._out.get_exchange(self.queue, ensure=False)
        return self._target

    async def _drop_outlet(self) -> None:
        """Close the publishing channel, best effort and within the confirm timeout (a wedged one)."""
        channel, self._out, self._target = self._out, None, None
        if channel is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_close_quietly(channel), self.timeout)


async def ask_to_release(connection: AbstractRobustConnection, queue: str, *, shards: int,
                         within: float = 30.0) -> list[dict[str, Any]]:
    """Make every message waiting in `wait_queue(queue)` due now; the headers of each
    (`moved_headers`). [] when there is no wait queue."""
    name = wait_queue(queue)
    with mapped(f"asking the movers of {name!r} to release"):
        channel = await connection.channel(publisher_confirms=True)
        try:
            try:
                await channel.get_queue(name, ensure=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return []
            reply = await channel.declare_queue("", exclusive=True, auto_delete=True,
                                                arguments={"x-queue-type": "classic"})
            answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            ask = uuid.uuid4().hex

            async def answered(message: AbstractIncomingMessage) -> None:
                if message.correlation_id == ask and not answer.done():
                    answer.set_result(message.body)

            await reply.consume(answered, no_ack=True)
            own = Mover(connection, queue, shards=shards)  # active only when no other mover is
            own.start()
            try:
                await channel.default_exchange.publish(
                    aio_pika.Message(b"", headers={MARK_HEADER: True}, message_id=f"release-{ask}",
                                     correlation_id=ask, reply_to=reply.name,
                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=name, mandatory=True)
                try:
                    body = await asyncio.wait_for(answer, within)
                except TimeoutError:
                    raise BrokerError(f"no mover of {name!r} answered within {within:.0f} s") from None
            finally:
                await own.stop()
        finally:
            await _close_quietly(channel)
    moved = orjson.loads(body)
    return moved if isinstance(moved, list) else []


def _due(value: Any) -> float:
    """The due time a wait queue's message carries; none or unreadable: due now."""
    try:
        return float(text(value))
    except (TypeError, ValueError):
        return 0.0


async def _close_quietly(channel: AbstractChannel) -> None:
    if not channel.is_closed:
        try:
            await channel.close()
        except Exception as exc:
            log.debug("channel close failed", error=f"{type(exc).__name__}: {exc}")

