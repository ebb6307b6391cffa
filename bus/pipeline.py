"""The pipeline stages after intake: route (fan out) and deliver, the same on every broker.

    renkei.intake ──Router──▶ renkei.dest.<destination> ──Deliverer (bus.delivery)──▶ sink
                     │ drop duplicates by message_id
                     │ route (CEL) → project → validate the projection (target XSD)
                     │ tenancy (bus.tenants): the route's destination → this municipality's
                     │   destinations; one of another municipality is refused (audited), never sent
                     └ publish to every destination queue, confirmed; record it routed and
                       its audit events (in the trail before the ack), then ack

Each stage is a handler for `Broker.consume`: it returns to ack, raises to requeue.

A publish the broker does not take (unavailable, not confirmed) is retried here, for up to
`publish_retry_for` seconds, before the router gives up and the change is requeued: a
requeued change goes back to the broker, where a later change of the same resident may be
routed before it; retried in place, the resident's later changes wait behind it (the
dispatcher runs one key at a time). Publishing again after a partial failure can put a
projection in a destination queue twice; the sinks' idempotency keys absorb that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from lxml import etree
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from bus.audit.events import EventType
from bus.audit.recorder import AuditRecorder
from bus.brokers.base import Broker, Delivery, OutgoingMessage
from bus.catalog import Catalog, KindSchema
from bus.envelope import Envelope
from bus.errors import BrokerUnavailable, PublishNotConfirmed
from bus.logs import get_logger
from bus.routing.router import RouteTable
from bus.state import StateStore
from bus.tenants import CROSS_TENANT, Tenancy
from bus.topology import destination_queue
from bus.validation.safe_xml import parse_xml

__all__ = ["Router", "decode", "destination_queue"]

log = get_logger("renkei.pipeline")


def decode(body: bytes, envelope: Envelope, catalog: Catalog) -> tuple[KindSchema, dict[str, Any]]:
    """Decode a body the bus itself validated at intake (still through the hardened parser)."""
    ks = catalog.get(envelope.kind, envelope.schema_version)
    if envelope.content_type == "application/avro":
        return ks, ks.from_avro(body)
    return ks, ks.from_xml(parse_xml(body))


class Router:
    """Consumes the intake queue and fans each change out to its destinations.

    `queue_of` names a destination's queue (default `destination_queue`; the benchmarks give
    their own, uniquely named, queues)."""

    def __init__(self, broker: Broker, catalog: Catalog, routes: RouteTable, state: StateStore, *,
                 queue_of: Callable[[str], str] = destination_queue, recorder: AuditRecorder | None = None,
                 tenancy: Tenancy | None = None, publish_retry_for: float = 10.0) -> None:
        self._broker = broker
        self._publish_retry_for = publish_retry_for
        self._recorder = recorder
        self._catalog = catalog
        self._routes = routes
        self._state = state
        self._queue_of = queue_of
        self._tenancy = tenancy
        self._routed = _GroupCommit(state)

    async def handle(self, delivery: Delivery) -> None:
        envelope = Envelope.from_headers(delivery.headers)
        if self._state.is_routed(envelope.message_id):
            log.info("duplicate dropped", message_id=envelope.message_id, stage="route")
            return
        _, record = decode(delivery.body, envelope, self._catalog)
        outgoing: list[tuple[str, OutgoingMessage]] = []
        destinations: list[str] = []
        routed: list[Envelope] = []
        for match in self._routes.route(record, envelope.municipality, message_id=envelope.message_id):
            target = match.target
            xml = target.to_xml(match.record)
            target.xml_schema.assertValid(etree.fromstring(xml))  # a projection must be valid, or it is a bug
            names = [match.route.destination]
            if self._tenancy is not None:
                names = self._tenancy.targets(match.route.destination, envelope.municipality)
            for name in names:
                out = envelope.for_destination(name, target.kind, target.version, match.route.name,
                                               match.route.legal_basis)
                if self._tenancy is not None and not self._tenancy.admits(name, envelope.municipality):
                    self._refuse(out)  # whatever the route says: never another municipality's destination
                    continue
                message = OutgoingMessage(xml, out.idempotency_key, envelope.subject, out.to_headers())
                outgoing.append((self._queue_of(name), message))
                destinations.append(name)
                routed.append(out)
        if outgoing:
            await self._publish(outgoing, envelope.message_id)
        await self._routed.record(envelope.message_id, destinations)  # durable before the ack
        if self._recorder is not None:
            for out in routed:
                self._recorder.event(EventType.ROUTED, out)
            await self._recorder.flush()  # in the trail before the ack: a crash loses no event
        log.debug("routed", message_id=envelope.message_id, destinations=len(outgoing))

    async def _publish(self, outgoing: list[tuple[str, OutgoingMessage]], message_id: str) -> None:
        try:
            await self._broker.publish_many(outgoing)
            return
        except (BrokerUnavailable, PublishNotConfirmed) as exc:
            log.warning("publish not taken; publishing again", message_id=message_id, error=type(exc).__name__)
        async for attempt in AsyncRetrying(  # built only on a failure: the hot path has no retry object
            retry=retry_if_exception_type((BrokerUnavailable, PublishNotConfirmed)),
            stop=stop_after_delay(self._publish_retry_for),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            reraise=True,
        ):
            with attempt:
                await self._broker.publish_many(outgoing)

    def _refuse(self, out: Envelope) -> None:
        log.warning("cross-tenant route refused", route=out.route, destination=out.destination,
                    municipality=out.municipality, message_id=out.message_id)
        self._state.count("destination", out.destination or "", "refused")
        if self._recorder is not None:
            self._recorder.event(EventType.REFUSED, out, codes=[CROSS_TENANT],
                                 reason=f"destination {out.destination} does not belong to municipality "
                                        f"{out.municipality} (route {out.route})")


class _GroupCommit:
    """`StateStore.record_routed` for the messages that finish in one turn of the event loop, in
    one transaction: the router's concurrent messages often finish together (one broker frame
    confirms many publishes), and a transaction each cost ~80 µs, ~30 µs shared by eight.
    Each caller returns once its own row is committed (or gets the transaction's error)."""

    def __init__(self, state: StateStore) -> None:
        self._state = state
        self._pending: list[tuple[str, list[str], asyncio.Future[None]]] = []

    async def record(self, message_id: str, destinations: list[str]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._commit)
        self._pending.append((message_id, destinations, done))
        await done

    def _commit(self) -> None:
        batch, self._pending = self._pending, []
        try:
            self._state.record_routed_many([(message_id, destinations) for message_id, destinations, _ in batch])
        except Exception as exc:
            for *_, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for *_, done in batch:
            if not done.done():
                done.set_result(None)
