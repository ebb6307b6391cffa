"""The route stage: fan each accepted change out to its destinations, the same on every broker.

    renkei.intake ──route──▶ renkei.dest.<destination> (one per destination)
                    │ already routed? (a redelivery) → DUPLICATE
                    │ the resident parked here? (an earlier change dead at this stage) → held
                    │ the routes that take this change's kind (CEL) → project (bus.stages.project)
                    │ tenancy (bus.tenancy): the route's destination → this municipality's
                    │   destinations; one of another municipality is refused (reported), never sent
                    │ a destination that pins a schema version gets the projection to that version
                    └ publish every projection, confirmed; record the change routed → DONE

The dispatcher (bus.stages.dispatch) acks after the hooks have kept the events. A change that
crashes the stage (a condition that cannot be evaluated on it, an invalid projection) is
requeued until it has crashed `poison_after` times, then dead-lettered here (D300) with its
resident parked behind it: the resident's later changes are held, in order, until an
operator replays or discards it (`renkei dead`), like a destination's.

A publish the broker does not take (unavailable, not confirmed) is retried here, for up to
`publish_retry_for` seconds, before the stage gives up and the change is requeued: a requeued
change goes back to the broker, where a later change of the same resident may be routed
before it; retried in place, the resident's later changes wait behind it (the broker's
dispatcher runs one key at a time). Publishing again after a partial failure can put a
projection in a destination queue twice; the sinks' idempotency keys absorb that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from bus.brokers.base import Broker, Delivery, OutgoingMessage
from bus.catalog import Catalog
from bus.catalog.decode import decode
from bus.envelope import Envelope
from bus.errors import BrokerUnavailable, PublishNotConfirmed
from bus.groupcommit import GroupCommit
from bus.routing.router import RouteTable
from bus.stages.hooks import StageHooks
from bus.stages.order import Message, ResidentLine
from bus.stages.outcomes import DONE, DUPLICATE, Outcome
from bus.stages.project import project
from bus.store_protocols import StateStoreProtocol
from bus.tenancy import Tenancy
from bus.topology import destination_queue

__all__ = ["RouteStage"]


class RouteStage:
    """Consumes the intake queue and fans each change out to its destinations.

    `queue_of` names a destination's queue (default `destination_queue`; the benchmarks give
    their own, uniquely named, queues). `line` keeps per-resident order at this stage. `pins`:
    destination → the version of its routes' target kinds it takes (`[destinations.<name>]
    schema_version`); the others get the latest."""

    name = "route"

    def __init__(self, broker: Broker, catalog: Catalog, routes: RouteTable, state: StateStoreProtocol,
                 line: ResidentLine, *, hooks: StageHooks | None = None,
                 queue_of: Callable[[str], str] = destination_queue, tenancy: Tenancy | None = None,
                 publish_retry_for: float = 10.0, pins: Mapping[str, int] | None = None) -> None:
        self._broker = broker
        self._pins = dict(pins or {})
        self._publish_retry_for = publish_retry_for
        self._hooks = hooks or StageHooks()
        self._catalog = catalog
        self._routes = routes
        self._state = state
        self._queue_of = queue_of
        self._tenancy = tenancy
        self.line = line
        # the messages that finish while a commit runs share the next one (bus.groupcommit): the
        # stage's concurrent messages often finish together (one broker frame confirms many
        # publishes), and a transaction each cost ~80 µs, ~30 µs shared by eight
        self._routed: GroupCommit[tuple[str, list[str]]] = GroupCommit(self._record_routed)

    async def aclose(self) -> None:
        """Stop the routed-ids writer (after the consumer has stopped: nothing is pending)."""
        await self._routed.drain()
        await self._routed.aclose()

    async def _record_routed(self, batch: list[tuple[str, list[str]]]) -> list[None]:
        self._state.record_routed_many(batch)
        return [None] * len(batch)

    async def resume(self) -> None:
        """Finish releases a crash interrupted."""
        await self.line.resume(self._route_held)

    async def handle(self, batch: Sequence[Delivery]) -> list[Outcome]:
        return [await self._one(delivery) for delivery in batch]

    async def _one(self, delivery: Delivery) -> Outcome:
        envelope = Envelope.from_headers(delivery.headers)
        if self._state.is_routed(envelope.message_id):
            self._hooks.already_routed(envelope)
            return DUPLICATE
        message = Message(envelope, dict(delivery.headers), delivery.body)
        passes, parked = self.line.admit(message)
        if not passes:
            return DONE  # held behind the resident's dead change
        await self._route(message)
        if parked is not None:  # the resident's dead change, replayed: what waited behind it follows
            await self.line.release(envelope.subject, envelope.message_id, self._route_held)
        return DONE

    async def _route_held(self, message: Message) -> bool:
        if not self._state.is_routed(message.envelope.message_id):
            await self._route(message)
        return True

    async def _route(self, message: Message) -> None:
        envelope = message.envelope
        _, record = decode(message.body, envelope, self._catalog)
        outgoing: list[tuple[str, OutgoingMessage]] = []
        destinations: list[str] = []
        routed: list[Envelope] = []
        tenancy = self._tenancy
        pins = self._pins
        for match in self._routes.route(record, envelope.municipality, kind=envelope.kind,
                                        message_id=envelope.message_id):
            xml = project(match)
            target = match.target
            names = [match.route.destination]
            if tenancy is not None:
                names = tenancy.targets(match.route.destination, envelope.municipality)
            for name in names:
                body, made = xml, target
                if pins and name in pins:  # a pinned destination: projected again, to its version
                    pinned = self._routes.pinned(match, pins[name], record, envelope.municipality,
                                                 envelope.message_id)
                    if pinned is not match:
                        body, made = project(pinned), pinned.target
                out = envelope.for_destination(name, made.kind, made.version, match.route.name,
                                               match.route.legal_basis)
                if tenancy is not None and not tenancy.admits(name, envelope.municipality):
                    # whatever the route says: never another municipality's destination
                    self._hooks.refused(out, f"destination {name} does not belong to municipality "
                                             f"{envelope.municipality} (route {match.route.name})")
                    continue
                outgoing.append((self._queue_of(name),
                                 OutgoingMessage(body, out.idempotency_key, envelope.subject, out.to_headers())))
                destinations.append(name)
                routed.append(out)
        if outgoing:
            await self._publish(outgoing)
        await self._routed.submit((envelope.message_id, destinations))  # durable before the ack
        for out in routed:
            self._hooks.routed(out)

    async def _publish(self, outgoing: list[tuple[str, OutgoingMessage]]) -> None:
        try:
            await self._broker.publish_many(outgoing)
            return
        except (BrokerUnavailable, PublishNotConfirmed):
            pass  # retried below; the retry object is built only on a failure
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((BrokerUnavailable, PublishNotConfirmed)),
            stop=stop_after_delay(self._publish_retry_for),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            reraise=True,
        ):
            with attempt:
                await self._broker.publish_many(outgoing)
