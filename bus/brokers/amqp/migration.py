"""RabbitMQ queues declared by an earlier renkei with other arguments: found, and migrated.

RabbitMQ never changes a queue's arguments: declaring one that exists with other arguments
fails (PRECONDITION_FAILED, "inequivalent arg"), so a bus whose queues were made before every
queue had `x-single-active-consumer` (or, one day, another argument) does not start on them.
`renkei queues check` says which queues differ; `renkei queues migrate` rebuilds each with the
arguments this renkei declares, keeping every message, in order:

1. declare `<queue>.migrating` (a plain quorum queue) and move every message into it;
2. delete the queue (only if empty and unused) and declare it again with the new arguments;
3. move the messages back, delete `<queue>.migrating`; a sharded queue is bound to its
   exchange again (deleting a queue deletes its bindings).

A move takes a message, publishes a copy (body, headers, properties) with a publisher confirm,
then acks the original: a crash in between leaves the message in both queues, which renkei's
duplicate handling absorbs (at least once, never lost). Running `migrate` again resumes an
interrupted migration: a `<queue>.migrating` that still holds messages is moved back first.
The bus must be stopped: a queue with consumers is refused ("busy"), since a message moved
out from under a consumer would overtake the ones it holds.

Messages are taken by basic.get. A queue that already has a single active consumer and
differs in another argument refuses basic.get (RESOURCE_LOCKED); it is refused here with
nothing moved (drain it with the bus instead). Moving by consumer was tried and dropped: a
quorum queue went on counting the closed channel's consumer for over 30 s under load, so the
delete that must follow could not tell a finished move from a running bus.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiormq.exceptions
import structlog

from bus.brokers.amqp import topology
from bus.brokers.amqp.broker import AmqpBroker
from bus.brokers.amqp.errors import mapped, reply_text
from bus.brokers.amqp.expedite import copy_message as _copy
from bus.brokers.amqp.expedite import passive_counts as _passive
from bus.errors import BrokerError

__all__ = ["MIGRATING", "QueueState", "expected_arguments", "inspect_queue", "migrate_queue"]

log = structlog.get_logger(__name__)

MIGRATING = ".migrating"
_HOLDING: dict[str, Any] = {"x-queue-type": "quorum"}
_SETTLE_TRIES = 10
_IDLE = 0.5  # seconds between two looks at a queue about to be deleted

Status = Literal["ok", "missing", "differs", "interrupted", "busy", "migrated"]


@dataclass(frozen=True, slots=True)
class QueueState:
    name: str
    status: Status
    messages: int = 0  # ready in the queue (and in its <queue>.migrating, when interrupted)
    consumers: int = 0
    detail: str = ""

    @property
    def needs_migration(self) -> bool:
        return self.status in ("differs", "interrupted")


def expected_arguments(broker: AmqpBroker, name: str) -> dict[str, Any]:
    """The arguments this renkei declares the RabbitMQ queue `name` with."""
    return topology.arguments_of(name, shards=broker.shards)


async def inspect_queue(broker: AmqpBroker, name: str) -> QueueState:
    """Whether the queue `name` has the arguments this renkei declares it with; declares nothing."""
    found = await _passive(broker, name)
    held = await _passive(broker, name + MIGRATING)
    if held is not None and held[0]:
        ready = (found or (0, 0))[0] + held[0]
        return QueueState(name, "interrupted", ready, (found or (0, 0))[1],
                          f"{name}{MIGRATING} still holds {held[0]} messages: run `renkei queues migrate` again")
    if found is None:
        return QueueState(name, "missing", detail="the bus declares it when it starts")
    ready, consumers = found
    differs = await _differs(broker, name)
    if differs:
        return QueueState(name, "differs", ready, consumers, differs)
    return QueueState(name, "ok", ready, consumers)


async def _differs(broker: AmqpBroker, name: str) -> str | None:
    """What RabbitMQ says is different about the existing queue `name`, or None when it has
    this renkei's arguments (declaring a queue again with the same ones changes nothing)."""
    with mapped(f"checking the arguments of queue {name!r}"):
        async with broker.admin_channel() as channel:
            try:
                await channel.declare_queue(name, durable=True, arguments=expected_arguments(broker, name))
            except aiormq.exceptions.ChannelPreconditionFailed as exc:
                return reply_text(exc, str(exc))
    return None


async def migrate_queue(broker: AmqpBroker, name: str, progress: Callable[[str], None] | None = None,
                        moved: Callable[[int], None] | None = None) -> QueueState:
    """Rebuild the queue `name` with this renkei's arguments, moving its messages through
    `<name>.migrating` (see the module text); a queue that needs nothing is left alone.
    `moved(1)` is called for each message moved (out, then back: twice each)."""
    state = await inspect_queue(broker, name)
    if not state.needs_migration:
        return state
    if state.consumers:
        return QueueState(name, "busy", state.messages, state.consumers,
                          f"{state.consumers} consumers: stop the bus (every `renkei run`) first")
    say = progress or (lambda text: None)
    holding = name + MIGRATING
    await _declare(broker, holding, _HOLDING)
    # the old queue, if it is still there (a first run, or one interrupted during the first move:
    # what it still holds comes after what <name>.migrating already has)
    if await _passive(broker, name) is not None and await _differs(broker, name):
        try:
            out = await _move(broker, name, holding, moved)
        except BrokerError:
            if state.status == "differs":  # a first run: remove the holding queue if nothing reached it
                with contextlib.suppress(BrokerError):  # the error to see is the move's
                    if await _passive(broker, holding) == (0, 0):
                        await _delete_empty(broker, holding)
            raise
        say(f"{name}: {out} messages moved to {holding}")
        await _delete_empty(broker, name)
    await _declare(broker, name, expected_arguments(broker, name))
    back = await _move(broker, holding, name, moved)
    await _delete_empty(broker, holding)
    say(f"{name}: declared again with {_describe(expected_arguments(broker, name))}; {back} messages back")
    logical = topology.sharded_queue(name)
    if logical and broker.shards > 1:
        await broker.declare(logical)  # its binding went with the old queue
    log.info("queue migrated", queue=name, messages=back)
    return QueueState(name, "migrated", back)


async def _move(broker: AmqpBroker, source: str, target: str, each: Callable[[int], None] | None = None) -> int:
    """Move every message of `source` to `target` in order: copy, confirm, ack, one at a time,
    by basic.get (no consumer: a quorum queue may go on counting a closed channel's consumer,
    sometimes for longer than 30 s, and the delete that follows waits for none)."""
    moved = 0
    with mapped(f"moving the messages of queue {source!r} to {target!r}", publishing=True):
        async with broker.admin_channel(confirms=True) as channel:
            queue = await channel.get_queue(source, ensure=False)
            try:
                while (message := await queue.get(no_ack=False, fail=False)) is not None:
                    await channel.default_exchange.publish(_copy(message), routing_key=target, mandatory=True,
                                                           timeout=broker.publish_timeout)
                    await message.ack()
                    moved += 1
                    if each is not None:
                        each(1)
            except aiormq.exceptions.ChannelLockedResource as exc:  # refused before any message was taken
                raise BrokerError(
                    f"queue {source!r} has a single active consumer and differs in another argument: RabbitMQ "
                    f"refuses basic.get on it ({reply_text(exc, 'RESOURCE_LOCKED')}), so it is not migrated here. "
                    f"Nothing was moved; drain it with the bus, then delete it and let the bus declare it") from exc
    return moved


async def _delete_empty(broker: AmqpBroker, name: str) -> None:
    """Delete the queue `name`, which must be empty and unused (quorum queues take neither
    if-empty nor if-unused: the check is here, just before)."""
    with mapped(f"deleting queue {name!r}"):
        async with broker.admin_channel() as channel:
            for _ in range(_SETTLE_TRIES):  # a consumer of the move, its channel just closed, may still count
                result = (await channel.declare_queue(name, passive=True)).declaration_result
                if not (result.message_count or result.consumer_count):
                    break
                await asyncio.sleep(_IDLE)
            else:
                raise BrokerError(f"queue {name!r} is not empty ({result.message_count} messages, "
                                  f"{result.consumer_count} consumers) after the move: nothing deleted; "
                                  "is a bus running?")
            await channel.queue_delete(name)


async def _declare(broker: AmqpBroker, name: str, arguments: dict[str, Any]) -> None:
    with mapped(f"declaring queue {name!r}"):
        async with broker.admin_channel() as channel:
            await channel.declare_queue(name, durable=True, arguments=arguments)


def _describe(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(arguments.items()))

