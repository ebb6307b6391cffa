"""The workload both sides of the pipeline benchmark process: the same messages, the same queues.

- `build_workload(n, seed)` takes valid jumin.idou changes from the synthetic registry
  (bus.synthetic, as `renkei sample` does) and keeps the first `n` that the shipped routes
  send to exactly `FANOUT` (5) distinct destinations, so renkei's router and the reference
  publish the same number of outputs per input. Bodies are XML, as a source submits them;
  headers are the envelope intake would give them (pseudonyms under a benchmark key).
- `QueueSet` names a run's queues uniquely (`bench.<run>.<side>.in`, `...out.<destination>`),
  declares them as renkei declares its own (durable quorum queues) and deletes them after.
- `preload` puts the messages into an input queue with publisher confirms, before the clock.

Nothing here prints or returns personal data: a `Workload` is opaque bytes plus pseudonymous
headers; only counts leave this module.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

import aio_pika
from aio_pika.abc import AbstractChannel

from bus.brokers.amqp import queue_arguments, wire_headers
from bus.brokers.base import OutgoingMessage
from bus.catalog import Catalog
from bus.envelope import Envelope
from bus.masking import Pseudonymizer
from bus.paths import routes_dir
from bus.routing.router import RouteTable
from bus.synthetic.samples import SOURCE_KIND, sample_records

__all__ = ["FANOUT", "QueueSet", "Workload", "build_workload", "preload"]

FANOUT = 5
BENCH_KEY = b"renkei-bench-pseudonym-key-not-a-secret"
SOURCE = "bench.jumin"


@dataclass(frozen=True)
class Workload:
    messages: tuple[OutgoingMessage, ...]
    destinations: tuple[str, ...]  # every destination some message reaches
    candidates: int  # synthetic changes looked at to find the messages

    def __len__(self) -> int:
        return len(self.messages)


def build_workload(n: int, *, seed: int = 1, catalog: Catalog | None = None,
                   routes: RouteTable | None = None) -> Workload:
    """The first `n` synthetic changes (of seed `seed`) that route to exactly FANOUT destinations."""
    catalog = catalog or Catalog.load()
    routes = routes or RouteTable.load(routes_dir(), catalog)
    ks = catalog.get(SOURCE_KIND)
    pseudonyms = Pseudonymizer(BENCH_KEY)
    messages: dict[str, OutgoingMessage] = {}
    destinations: set[str] = set()
    looked = 0
    for record in sample_records(SOURCE_KIND, catalog, seed=seed, n=n * 20):
        looked += 1
        municipality = record["municipality_code"]
        reached = {m.route.destination for m in routes.route(record, municipality)}
        if len(reached) != FANOUT:
            continue
        person, sequence = record["address_number"], int(record["history_number"])
        envelope = Envelope(
            message_id=pseudonyms.message_id(municipality, person, sequence), kind=ks.kind,
            schema_version=ks.version, content_type="application/xml", municipality=municipality,
            source=SOURCE, subject=pseudonyms.subject(municipality, person), sequence=sequence,
        )
        if envelope.message_id in messages:
            continue
        messages[envelope.message_id] = OutgoingMessage(
            ks.to_xml(record), envelope.message_id, envelope.subject, envelope.to_headers())
        destinations |= reached
        if len(messages) == n:
            break
    if len(messages) < n:
        raise RuntimeError(f"found only {len(messages)} of {n} changes with {FANOUT} destinations "
                           f"in {looked} synthetic changes")
    return Workload(tuple(messages.values()), tuple(sorted(destinations)), looked)


class QueueSet:
    """One side's queues for one run: an input queue and a queue per destination."""

    def __init__(self, side: str, destinations: Iterable[str], run: str | None = None) -> None:
        self.prefix = f"bench.{run or secrets.token_hex(4)}.{side}"
        self.input = f"{self.prefix}.in"
        self.outputs = {d: f"{self.prefix}.out.{d}" for d in destinations}

    def output(self, destination: str) -> str:
        """The queue of `destination` (what renkei's Router is given as its `queue_of`)."""
        return self.outputs[destination]

    @property
    def all(self) -> list[str]:
        return [self.input, *self.outputs.values()]

    async def declare(self, channel: AbstractChannel) -> None:
        for name in self.all:
            await channel.declare_queue(name, durable=True, arguments=queue_arguments())

    async def depths(self, channel: AbstractChannel) -> dict[str, int]:
        """Ready messages per queue (passive declare)."""
        result: dict[str, int] = {}
        for name in self.all:
            queue = await channel.declare_queue(name, passive=True)
            result[name] = queue.declaration_result.message_count or 0
        return result

    async def delete(self, channel: AbstractChannel) -> None:
        for name in self.all:
            await channel.queue_delete(name)


async def preload(channel: AbstractChannel, queue: str, messages: Sequence[OutgoingMessage],
                  *, batch: int = 500) -> None:
    """Publish `messages` to `queue` (persistent, confirmed), as intake would have."""
    exchange = channel.default_exchange
    it = iter(messages)
    while chunk := list(islice(it, batch)):
        await asyncio.gather(*(
            exchange.publish(
                aio_pika.Message(m.body, message_id=m.message_id, headers=wire_headers(m),
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue, mandatory=True)
            for m in chunk))
