"""Publishing: one channel with publisher confirms, every message mandatory and persistent.

Every message goes through the default exchange (or a sharded queue's hash exchange) with
`mandatory=True`, so a queue that does not exist makes the broker return it, and the publish
raises. `publish_many` sends all messages and then awaits all confirms together (pipelined:
~4× the rate of awaiting each). A publish goes to the channel's aiormq underlay: what
aio-pika's `Exchange.publish` does after building an `aio_pika.Message`, which cost ~30 µs
a publish, ~150 µs of the router's CPU a message at 5 destinations.

A channel whose publishes are nacked or not confirmed in time is replaced, not used again
(issue 15): after a quorum queue's leader was lost with its node, RabbitMQ 3.10 was seen to
nack every later publish of a channel to that queue, minutes on end, while other channels'
publishes to it were confirmed. The router kept retrying on that channel for ever (its
connection, to another node, never dropped), holding its shard; its retries now go on a
fresh channel (`_replace`).

Two ways to the wire: the fast path (`fastpath.send_batch`, one frame write for the batch)
and the public path (aiormq's `basic_publish` per message, awaited together). aiormq matches
a basic.return to its publish by `message_id` on either, so two publishes of one message id
are never in flight at once (the second waits for the first).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import aiormq.exceptions
import structlog
from aio_pika.abc import AbstractChannel

from bus.brokers.amqp import fastpath, topology
from bus.brokers.amqp.connection import Link
from bus.brokers.amqp.errors import broker_error, mapped, safe_url
from bus.brokers.amqp.wire import properties
from bus.brokers.base import OutgoingMessage
from bus.errors import BrokerError, BrokerUnavailable, PublishNotConfirmed
from bus.topology import wait_queue

__all__ = ["Publisher"]

Item = tuple[str, str, OutgoingMessage]  # (exchange, routing key, message)

log = structlog.get_logger(__name__)


class Publisher:
    """The publishing side of one broker: its channel on `link`, what it knows is declared.
    `fast_path`: through fastpath.py when the installed aiormq allows it."""

    def __init__(self, link: Link, *, shards: int, fast_path: bool, timeout: float,
                 declared_wait: Callable[[str], None] = lambda queue: None) -> None:
        self.link, self.shards, self.fast_path, self.timeout = link, shards, fast_path, timeout
        self.declared_wait = declared_wait  # told the logical queue whose wait queue it declared
        self.channel: AbstractChannel | None = None
        self.in_flight_ids: dict[str, asyncio.Future[None]] = {}
        self.wait_queues: set[str] = set()
        self.exchanges: set[str] = set()  # sharded queues' exchanges known to exist

    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]], *, delay: float = 0.0) -> None:
        if not items:
            return
        due = None
        if delay > 0:  # into the wait queue, with its due time (waiting.py)
            due = time.time() + delay
            items = [(await self.wait_queue(q), m) for q, m in items]
        ids = [m.message_id for _, m in items]
        if len(set(ids)) == len(ids) and not any(i in self.in_flight_ids for i in ids):
            results = await self._publish_batch(items, due)
        else:  # a message id twice, or already in flight: aiormq matches returns by id, so one at a time
            results = await asyncio.gather(*(self._publish_one(q, m, due) for q, m in items),
                                           return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            first = failures[0]
            if not isinstance(first, BrokerError):
                raise first
            more = f" ({len(failures)} of {len(items)} messages not accepted)" if len(items) > 1 else ""
            raise type(first)(f"{first}{more}") from first

    async def _publish_batch(self, items: Sequence[tuple[str, OutgoingMessage]],
                             due: float | None = None) -> list[BaseException | None]:
        """Publish `items` and await their confirms together. The result per item: None, or
        the renkei error it raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for _, message in items:
            self.in_flight_ids[message.message_id] = done
        used: AbstractChannel | None = None
        try:
            with mapped(f"publishing {len(items)} messages", publishing=True):
                addresses = [await self._address(q) for q, _ in items]
                used = await self.current_channel()
                channel = await used.get_underlay_channel()
                batch = [(exchange, key, message)
                         for (exchange, key), (_, message) in zip(addresses, items, strict=True)]
                if self.fast_path and fastpath.batch_ready(channel):
                    outcomes = await fastpath.send_batch(channel, batch, self.timeout, due)
                else:
                    outcomes = await self._send_each(channel, batch, due)
                if any(wedged(o) for o in outcomes):
                    await self._replace(used)
            results: list[BaseException | None] = []
            for (queue, message), outcome in zip(items, outcomes, strict=True):
                if outcome is None or not isinstance(outcome, Exception):
                    results.append(outcome)
                    continue
                error = broker_error(f"publishing {message.message_id} to queue {queue!r}", outcome, publishing=True)
                if error is not None and error is not outcome:
                    error.__cause__ = outcome
                results.append(error or outcome)
            return results
        except PublishNotConfirmed as error:
            if wedged(error.__cause__):
                await self._replace(used)
            raise
        finally:
            for _, message in items:
                self.in_flight_ids.pop(message.message_id, None)
            done.set_result(None)

    async def _send_each(self, channel: aiormq.abc.AbstractChannel, batch: Sequence[Item],
                         due: float | None = None) -> list[BaseException | None]:
        """The public path: aiormq's `basic_publish` per message, awaited together."""
        results = await asyncio.gather(*(
            channel.basic_publish(message.body, exchange=exchange, routing_key=key, mandatory=True,
                                  properties=properties(message, due), timeout=self.timeout)
            for exchange, key, message in batch), return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]

    async def _publish_one(self, queue: str, message: OutgoingMessage, due: float | None = None) -> None:
        while (earlier := self.in_flight_ids.get(message.message_id)) is not None:
            await asyncio.wait([earlier])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.in_flight_ids[message.message_id] = done
        used: AbstractChannel | None = None
        try:
            exchange, key = await self._address(queue)
            with mapped(f"publishing {message.message_id} to queue {queue!r}", publishing=True):
                used = await self.current_channel()
                channel = await used.get_underlay_channel()
                await channel.basic_publish(message.body, exchange=exchange, routing_key=key,
                                            properties=properties(message, due), mandatory=True,
                                            timeout=self.timeout)
        except PublishNotConfirmed as error:
            if wedged(error.__cause__):
                await self._replace(used)
            raise
        finally:
            del self.in_flight_ids[message.message_id]
            done.set_result(None)

    async def _replace(self, channel: AbstractChannel | None) -> None:
        """Stop publishing on `channel`, whose publishes were nacked or not confirmed in time: the next
        publish opens a new channel (`current_channel`). Closed best effort, within the timeout
        (its unconfirmed publishes fail, and are published again by their callers)."""
        if channel is None or self.channel is not channel:
            return  # replaced already, by a publish that timed out beside this one
        self.channel = None
        log.warning("publishes nacked or not confirmed in time; the publishing channel is replaced")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(channel.close(), self.timeout)

    async def _address(self, queue: str) -> tuple[str, str]:
        """(exchange, routing key) of a publish to the logical `queue`."""
        if self.shards == 1 or queue in self.wait_queues:
            return "", queue
        if queue not in self.exchanges:  # publishing to a missing exchange would close the channel
            with mapped(f"looking up the exchange of queue {queue!r}"):
                try:
                    async with self.link.admin_channel() as channel:
                        await channel.get_exchange(queue, ensure=True)
                except aiormq.exceptions.ChannelNotFoundEntity as exc:
                    raise PublishNotConfirmed(f"queue {queue!r} was never declared: nothing published") from exc
            self.exchanges.add(queue)
        return queue, "hash"  # the exchange hashes the x-renkei-key header, not the routing key

    async def wait_queue(self, queue: str) -> str:
        """The queue where retries for `queue` wait until due (named by bus.topology)."""
        name = wait_queue(queue)
        if name not in self.wait_queues:
            with mapped(f"declaring wait queue {name!r}"):
                async with self.link.admin_channel() as channel:
                    await channel.declare_queue(name, durable=True, arguments=topology.arguments_of(name, shards=1))
            self.wait_queues.add(name)
            self.declared_wait(queue)
        return name

    async def open(self) -> None:
        with mapped(f"opening the publishing channel on {safe_url(self.link.url)}"):
            self.channel = await self.link.connection().channel(publisher_confirms=True, on_return_raises=True)

    async def current_channel(self) -> AbstractChannel:
        if self.channel is None or self.channel.is_closed:
            connection = self.link.connection()
            if not connection.connected.is_set():  # reconnecting (to this node, or the next one)
                try:
                    await asyncio.wait_for(connection.connected.wait(), self.timeout)
                except TimeoutError:
                    raise BrokerUnavailable(f"not connected to {safe_url(self.link.url)}: reconnecting") from None
            if self.channel is None or self.channel.is_closed:  # else restored with the connection
                self.channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return self.channel


def wedged(outcome: BaseException | None) -> bool:
    """A publish's failure that says its channel may be wedged: a nack (not a return: an
    unroutable message is no channel's fault) or no confirm in time."""
    return isinstance(outcome, TimeoutError) or (isinstance(outcome, aiormq.exceptions.DeliveryError)
                                                 and not isinstance(outcome, aiormq.exceptions.PublishError))
