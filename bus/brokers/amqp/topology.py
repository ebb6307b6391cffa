"""What renkei declares in RabbitMQ: the arguments of every queue, shards, delay queues.

- Every queue is a quorum queue with `x-single-active-consumer` (`queue_arguments`, the one
  place: the broker, queue migration and the AMQP intake all declare with it). However many
  bus processes consume a queue, RabbitMQ feeds one of them and keeps the others as hot
  standbys, which keeps a resident's changes in order (DESIGN §5): RabbitMQ itself keeps no
  per-key order across consumers.
- To scale out anyway, `shards=N` turns each queue into a consistent-hash exchange of that
  name hashing the `x-renkei-key` header (the resident's pseudonym) over N quorum queues
  `<queue>.shard<i>`, each with its own single active consumer: one resident always lands in
  the same shard (order kept), and N processes share the load. Publishing, consuming, stats
  and the delay queues speak of the logical queue; the shards are this package's business.
- A retry waits in `<queue>.delay.<millis>ms` (named by bus.topology.delay_queue): a quorum
  queue whose message TTL dead-letters its messages back into `<queue>` (at-least-once dead
  lettering, so a node failure between the two queues loses nothing). One queue per (queue,
  delay): the retry tiers are few, and a queue-wide TTL expires messages in order.
"""

from __future__ import annotations

import re
from typing import Any

from aio_pika.abc import AbstractChannel

from bus.brokers.amqp.wire import KEY_HEADER

__all__ = ["HASH_EXCHANGE", "arguments_of", "declare", "delay_arguments", "queue_arguments", "shard_names",
           "sharded_queue"]

HASH_EXCHANGE = "x-consistent-hash"
_DELAY = re.compile(r"^(?P<queue>.+)\.delay\.(?P<millis>[0-9]+)ms$")
_SHARD = re.compile(r"^(?P<queue>.+)\.shard[0-9]+$")


def queue_arguments() -> dict[str, Any]:
    """The arguments of every queue renkei declares (a fresh dict each call)."""
    return {"x-queue-type": "quorum", "x-single-active-consumer": True}


def delay_arguments(queue: str, millis: int, *, shards: int) -> dict[str, Any]:
    """The arguments of the delay queue `<queue>.delay.<millis>ms`."""
    return {
        **queue_arguments(),
        "x-message-ttl": millis,
        # back into the queue: the default exchange by name, or a sharded queue's exchange
        # (which hashes the x-renkei-key header the message still carries)
        "x-dead-letter-exchange": "" if shards == 1 else queue,
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def shard_names(queue: str, shards: int) -> list[str]:
    """The RabbitMQ queues of the logical `queue`: itself, or its shards."""
    return [queue] if shards == 1 else [f"{queue}.shard{i}" for i in range(shards)]


def sharded_queue(name: str) -> str | None:
    """The logical queue whose shard the RabbitMQ queue `name` is, or None."""
    found = _SHARD.match(name)
    return found["queue"] if found else None


def arguments_of(name: str, *, shards: int) -> dict[str, Any]:
    """The arguments renkei declares the RabbitMQ queue `name` with (a delay queue's differ)."""
    delay = _DELAY.match(name)
    if delay:
        return delay_arguments(delay["queue"], int(delay["millis"]), shards=shards)
    return queue_arguments()


async def declare(channel: AbstractChannel, queue: str, *, shards: int) -> None:
    """Declare the logical `queue` (idempotent): one queue, or the hash exchange and its shards."""
    if shards == 1:
        await channel.declare_queue(queue, durable=True, arguments=queue_arguments())
        return
    exchange = await channel.declare_exchange(queue, HASH_EXCHANGE, durable=True, arguments={"hash-header": KEY_HEADER})
    for shard in shard_names(queue, shards):
        declared = await channel.declare_queue(shard, durable=True, arguments=queue_arguments())
        await declared.bind(exchange, routing_key="1")  # equal weights
