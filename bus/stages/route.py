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
`publish_retry_for` seconds; then the stage raises it, and the dispatcher, seeing the
broker's failure and not the change's, runs the batch again in place (with backoff) and never
counts it toward `poison_after` (bus.stages.dispatch): a broker outage, a quorum queue's
leader election, is no poison. Retried in place, the resident's later changes wait behind it
(the broker's dispatcher runs one key at a time). Publishing again after a partial failure can
put a projection in a destination queue twice; the sinks' idempotency keys absorb that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from bus.brokers.base import Broker, Delivery, OutgoingMessage
from bus.catalog import Catalog
from bus.catalog.decode import decode
from bus.envelope import Envelope
from bus.errors import BrokerUnavailable, PublishNotConfirmed
from bus.groupcommit import GroupCommit
from bus.routing.model import RouteMatch
from bus.routing.router import RouteTable
from bus.routing.templates import Fragments, template_for
from bus.stages.handoff import Decoded
from bus.stages.hooks import StageHooks
from bus.stages.order import Message, ResidentLine
from bus.stages.outcomes import DONE, DUPLICATE, Outcome
from bus.stages.project import project, project_by_template
from bus.store_protocols import StateStoreProtocol
from bus.tenancy import Tenancy
from bus.topology import destination_queue

__all__ = ["RouteStage"]


@dataclass(slots=True)
class _Plan:
    """What routing one change publishes (bus.stages.route.RouteStage._plan)."""

    message_id: str
    outgoing: list[tuple[str, OutgoingMessage]] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)
    routed: list[Envelope] = field(default_factory=list)


class RouteStage:
    """Consumes the intake queue and fans each change out to its destinations.

    `queue_of` names a destination's queue (default `destination_queue`; the benchmarks give
    their own, uniquely named, queues). `line` keeps per-resident order at this stage. `pins`:
    destination → the version of its routes' target kinds it takes (`[destinations.<name>]
    schema_version`); the others get the latest. `fast_path` (`[bus] route_fast_path`): write
    generic projections from per-change fragments (bus.routing.templates), and take the record
    the intake of this process validated (`decoded`, bus.stages.handoff) instead of parsing
    the body again; False: each projection copied and written on its own, each body parsed
    (the plain path)."""

    name = "route"

    def __init__(self, broker: Broker, catalog: Catalog, routes: RouteTable, state: StateStoreProtocol,
                 line: ResidentLine, *, hooks: StageHooks | None = None,
                 queue_of: Callable[[str], str] = destination_queue, tenancy: Tenancy | None = None,
                 publish_retry_for: float = 10.0, pins: Mapping[str, int] | None = None,
                 fast_path: bool = True, decoded: Decoded | None = None) -> None:
        self._broker = broker
        self._fast = fast_path  # [bus] route_fast_path: bus.routing.templates, and `decoded`
        self._decoded = decoded if fast_path else None
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
        self._routed: GroupCommit[list[tuple[str, list[str]]]] = GroupCommit(self._record_routed)

    async def aclose(self) -> None:
        """Stop the routed-ids writer (after the consumer has stopped: nothing is pending)."""
        await self._routed.drain()
        await self._routed.aclose()

    async def _record_routed(self, batches: list[list[tuple[str, list[str]]]]) -> list[None]:
        self._state.record_routed_many([routed for batch in batches for routed in batch])
        return [None] * len(batches)

    async def resume(self) -> None:
        """Finish releases a crash interrupted."""
        await self.line.resume(self._route_held)

    async def handle(self, batch: Sequence[Delivery]) -> list[Outcome]:
        """Route a batch: every projection of it in one publish, its routed ids in one commit.
        A replayed dead change (its resident parked behind it) is routed on its own, with what
        waited behind it, after what came before it in the batch."""
        outcomes: list[Outcome] = []
        plans: list[_Plan] = []
        envelopes = [Envelope.from_headers(delivery.headers) for delivery in batch]
        routed = self._state.routed_among([envelope.message_id for envelope in envelopes])
        known = self.line.parked_among([envelope.subject for envelope in envelopes])
        for delivery, envelope in zip(batch, envelopes, strict=True):
            if envelope.message_id in routed:
                self._hooks.already_routed(envelope)
                outcomes.append(DUPLICATE)
                continue
            message = Message(envelope, dict(delivery.headers), delivery.body)
            passes, parked = self.line.admit(message, known)
            outcomes.append(DONE)  # routed, or held behind the resident's dead change
            if not passes:
                continue
            if parked is None:
                plans.append(self._plan(message))
                continue
            await self._send(plans)  # the resident's dead change, replayed: what waited behind it follows
            plans = []
            await self._route(message)
            await self.line.release(envelope.subject, envelope.message_id, self._route_held)
        await self._send(plans)
        return outcomes

    async def _route_held(self, message: Message) -> bool:
        if not self._state.is_routed(message.envelope.message_id):
            await self._route(message)
        return True

    async def _route(self, message: Message) -> None:
        await self._send([self._plan(message)])

    async def _send(self, plans: list[_Plan]) -> None:
        """Publish the plans' projections (confirmed), report each projection routed (its
        events written), then record their changes routed (durable before the ack). In that
        order: killed after the record, a redelivered change is dropped as already routed, so
        its `routed` events must be in the trail by then; killed before it, the change is routed
        again and its events are there twice (tests/unit/test_audit_before_ack.py)."""
        if not plans:
            return
        outgoing = [item for plan in plans for item in plan.outgoing]
        if outgoing:
            await self._publish(outgoing)
        for plan in plans:
            if plan.routed:
                self._hooks.routed(plan.routed)
        await self._hooks.written()
        await self._routed.submit([(plan.message_id, plan.destinations) for plan in plans])

    def _plan(self, message: Message) -> _Plan:
        """What routing `message` publishes: its projections, one per destination (tenancy and
        pins applied); a refused destination is reported here and left out."""
        envelope = message.envelope
        decoded = self._decoded
        source, record = (decode(message.body, envelope, self._catalog) if decoded is None
                          else decoded.decode(message.body, envelope, self._catalog))
        plan = _Plan(envelope.message_id)
        tenancy = self._tenancy
        pins = self._pins
        fragments: dict[int, Fragments] = {}  # the change's fragments, per shape of the record projected from
        for route, projector, projected_from, variables in self._routes.matching(record, envelope.municipality,
                                                                                 kind=envelope.kind):
            target = projector.target
            match: RouteMatch | None = None
            if self._fast and projector.named is None:
                written = fragments.get(id(projected_from))
                if written is None:
                    written = fragments[id(projected_from)] = Fragments(projected_from)
                xml = project_by_template(route, target, template_for(target, projector.never), written, source)
            else:
                match = RouteMatch(route, target, projector(projected_from, variables, envelope.message_id))
                xml = project(match, source)
            names = [route.destination]
            if tenancy is not None:
                names = tenancy.targets(route.destination, envelope.municipality)
            for name in names:
                body, made = xml, target
                if pins and name in pins:  # a pinned destination: projected again, to its version
                    if match is None:
                        match = RouteMatch(route, target, projector(projected_from, variables, envelope.message_id))
                    pinned = self._routes.pinned(match, pins[name], record, envelope.municipality,
                                                 envelope.message_id)
                    if pinned is not match:
                        body, made = project(pinned, source), pinned.target
                out = envelope.for_destination(name, made.kind, made.version, route.name, route.legal_basis)
                if tenancy is not None and not tenancy.admits(name, envelope.municipality):
                    # whatever the route says: never another municipality's destination
                    self._hooks.refused(out, f"destination {name} does not belong to municipality "
                                             f"{envelope.municipality} (route {route.name})")
                    continue
                plan.outgoing.append((self._queue_of(name),
                                      OutgoingMessage(body, out.idempotency_key, envelope.subject, out.to_headers())))
                plan.destinations.append(name)
                plan.routed.append(out)
        return plan

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
