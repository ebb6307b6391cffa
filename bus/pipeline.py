"""The pipeline stages after intake: route (fan out) and deliver, the same on every broker.

    renkei.intake ──Router──▶ renkei.dest.<destination> ──Deliverer──▶ sink
                     │ drop duplicates by message_id
                     │ route (CEL) → project → validate the projection (target XSD)
                     └ publish to every destination queue, confirmed, then ack

Each stage is a handler for `Broker.consume`: it returns to ack, raises to requeue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from lxml import etree
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from adapters.base import Outbound, Sink
from bus.brokers.base import Broker, Delivery, OutgoingMessage
from bus.catalog import Catalog, KindSchema
from bus.envelope import Envelope
from bus.errors import PermanentError, TransientError
from bus.logs import get_logger
from bus.routing.router import RouteTable
from bus.state import StateStore
from bus.validation.safe_xml import parse_xml

__all__ = ["DEAD_QUEUE", "Deliverer", "Router", "destination_queue"]

DEAD_QUEUE = "renkei.dead"
log = get_logger("renkei.pipeline")


def destination_queue(destination: str) -> str:
    return f"renkei.dest.{destination}"


def decode(body: bytes, envelope: Envelope, catalog: Catalog) -> tuple[KindSchema, dict[str, Any]]:
    """Decode a body the bus itself validated at intake (still through the hardened parser)."""
    ks = catalog.get(envelope.kind, envelope.schema_version)
    if envelope.content_type == "application/avro":
        return ks, ks.from_avro(body)
    return ks, ks.from_xml(parse_xml(body))


_ENVELOPE_FIELDS = tuple(Envelope.__dataclass_fields__)


def _headers(envelope: Envelope) -> dict[str, str | int]:
    """`envelope.to_headers()` without `dataclasses.asdict`'s recursive copy: every envelope
    field is a str, int or None, so a plain read gives the same dict, 15× faster (~35 µs per
    destination on the router's hot path). tests/bench/test_router_fast_paths.py pins the equality."""
    return {name: value for name in _ENVELOPE_FIELDS if (value := getattr(envelope, name)) is not None}


class Router:
    """Consumes the intake queue and fans each change out to its destinations.

    `queue_of` names a destination's queue (default `destination_queue`; the benchmarks give
    their own, uniquely named, queues)."""

    def __init__(self, broker: Broker, catalog: Catalog, routes: RouteTable, state: StateStore, *,
                 queue_of: Callable[[str], str] = destination_queue) -> None:
        self._broker = broker
        self._catalog = catalog
        self._routes = routes
        self._state = state
        self._queue_of = queue_of

    async def handle(self, delivery: Delivery) -> None:
        envelope = Envelope.from_headers(delivery.headers)
        if self._state.is_routed(envelope.message_id):
            log.info("duplicate dropped", message_id=envelope.message_id, stage="route")
            return
        _, record = decode(delivery.body, envelope, self._catalog)
        outgoing: list[tuple[str, OutgoingMessage]] = []
        destinations: list[str] = []
        for match in self._routes.route(record, envelope.municipality):
            target = match.target
            xml = target.to_xml(match.record)
            target.xml_schema.assertValid(etree.fromstring(xml))  # a projection must be valid, or it is a bug
            out = envelope.for_destination(
                match.route.destination, target.kind, target.version, match.route.name, match.route.legal_basis
            )
            message = OutgoingMessage(xml, out.idempotency_key, envelope.subject, _headers(out))
            outgoing.append((self._queue_of(match.route.destination), message))
            destinations.append(match.route.destination)
        if outgoing:
            await self._broker.publish_many(outgoing)
        self._state.record_routed(envelope.message_id, destinations)  # durable before the ack
        log.debug("routed", message_id=envelope.message_id, destinations=len(outgoing))


class Deliverer:
    """Consumes one destination's queue and hands each message to that destination's sink."""

    def __init__(
        self,
        broker: Broker,
        catalog: Catalog,
        state: StateStore,
        destination: str,
        sink: Sink,
        *,
        attempts: int = 3,
        requeue_delay: float = 1.0,
    ) -> None:
        self._broker = broker
        self._catalog = catalog
        self._state = state
        self.destination = destination
        self._sink = sink
        self._attempts = attempts
        self._requeue_delay = requeue_delay

    async def handle(self, delivery: Delivery) -> None:
        envelope = Envelope.from_headers(delivery.headers)
        _, record = decode(delivery.body, envelope, self._catalog)
        message = Outbound(envelope, record, delivery.body)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(TransientError),
                stop=stop_after_attempt(self._attempts),
                wait=wait_random_exponential(multiplier=0.05, max=1.0),
                reraise=True,
            ):
                with attempt:
                    receipt = await self._sink.deliver(message)
        except PermanentError as error:
            await self._dead_letter(delivery, envelope, "permanent", str(error))
            return
        except TransientError as error:
            self._state.count("destination", self.destination, "retried")
            log.warning("delivery deferred", destination=self.destination, message_id=envelope.message_id,
                        reason=str(error), attempt=delivery.delivery_count)
            await asyncio.sleep(self._requeue_delay)
            raise
        self._state.count("destination", self.destination, receipt.status)
        log.debug("delivered", destination=self.destination, message_id=envelope.message_id, status=receipt.status)

    async def _dead_letter(self, delivery: Delivery, envelope: Envelope, why: str, reason: str) -> None:
        headers = {**delivery.headers, "dead_reason": why, "dead_detail": reason[:500]}
        await self._broker.publish(DEAD_QUEUE, OutgoingMessage(delivery.body, delivery.message_id,
                                                               delivery.key, headers))
        self._state.count("destination", self.destination, "dead")
        log.warning("dead-lettered", destination=self.destination, message_id=envelope.message_id, reason=reason)
