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
  Every queue is sharded alike — the intake queue too, so any number of routers share it as
  deliverers share a destination, each resident's changes in one shard (issue 15).
- Which process is active on which shard: RabbitMQ (3.10) makes the first consumer to register
  a shard its active one. A process given a `ShardGroup` ("k/n": `renkei run --shard-group`)
  registers the shards i with i % n == k at once and the others only `standby_after` seconds
  later, as hot standbys: n processes started together split the shards, and when one dies its
  shards pass to the standbys. Without a group every shard is registered at once.
- A retry waits in `<queue>.wait` (bus.topology.wait_queue), a queue like every other, until a
  mover brings it back (waiting.py). Before December 2026 it waited in `<queue>.delay.<millis>ms`
  (bus.topology.delay_queue), a quorum queue whose TTL dead-lettered it back (at-least-once
  dead lettering, which RabbitMQ stranded after a node loss); `delay_arguments` still names
  those queues' arguments, for `renkei queues check` and `renkei retry now`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractChannel

from bus.brokers.amqp.wire import KEY_HEADER

__all__ = ["HASH_EXCHANGE", "ShardGroup", "arguments_of", "declare", "delay_arguments", "queue_arguments",
           "shard_names", "sharded_queue"]

HASH_EXCHANGE = "x-consistent-hash"
_DELAY = re.compile(r"^(?P<queue>.+)\.delay\.(?P<millis>[0-9]+)ms$")
_SHARD = re.compile(r"^(?P<queue>.+)\.shard[0-9]+$")


@dataclass(frozen=True, slots=True)
class ShardGroup:
    """Process `index` of `of` sharing a queue's shards: it prefers the shards i with i % of == index
    (`index == of`: none, a standby for every shard — a process beyond the group's size)."""

    index: int
    of: int

    def __post_init__(self) -> None:
        if not 0 <= self.index <= self.of <= 64 or self.of == 0:
            raise ValueError(f"a shard group is k/n with 0 <= k < n <= 64, got {self.index}/{self.of}")

    @classmethod
    def parse(cls, text: str) -> ShardGroup:
        """`k/n` (ValueError saying what is expected otherwise)."""
        index, _, of = text.partition("/")
        if not (index.isdigit() and of.isdigit()):
            raise ValueError(f"a shard group is k/n (this process's number k from 0, of n), got {text!r}")
        group = cls(int(index), int(of))
        if group.index == group.of:
            raise ValueError(f"a shard group is k/n with k < n, got {text!r}")
        return group

    def prefers(self, shard: int) -> bool:
        return self.index < self.of and shard % self.of == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.of}"


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
