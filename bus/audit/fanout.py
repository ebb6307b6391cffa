"""One `routed` record per change: a change routed to five systems is one row of the trail, not five.

A change routed to five systems was five `routed` records: about 5 of the ~12 records of a
change, and on the RabbitMQ router the only ones, each an SQLite or PostgreSQL row with two index
entries (bench/README.md, "One routed record per change"). The route stage reports a change's
projections together (StageHooks.routed), and `routed` makes them the one record; `join` does the
same for each run of `routed` events of one message emitted one by one and written together:

    destination  "zei kokuho kaigo"            the destinations, in the order routed (a space apart:
    route        "zei-default kokuho-default …"  identifiers never hold one, the guard sees to it)
    projection   "zei.jumin kokuho.jumin …"     (and kind: a routed event's kind is its projection's)
    legal_basis  '["地方税法…","国民健康保険法…",null]'  a JSON list: free text may hold anything (null: none)

Everything else (message, municipality, subject, sequence, source) is the same for the run, or
it is not joined; its time is the first event's (the router makes them together, microseconds
apart). The record is chained and verified as any other: its content is what the chain covers.
`split` gives back one event per destination, as they were reported (at that one time): a
message's life (AuditLog.life: `renkei audit show`, the console) reads them so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace

from bus.audit.chain import AuditRecord
from bus.audit.events import AuditEvent, EventType
from bus.envelope import Envelope

__all__ = ["is_joined", "join", "routed", "split", "split_records"]

_SEP = " "


def routed(envelopes: Sequence[Envelope]) -> list[AuditEvent]:
    """The `routed` records of one change, from its projections' envelopes (one per destination,
    as Envelope.for_destination makes them): one record, as `join` would make of their events,
    built at once (5 events made, screened and joined cost ~35 µs a change; this ~7 µs)."""
    if len(envelopes) < 2 or not all(_joinable_envelope(e, envelopes[0]) for e in envelopes):
        return [AuditEvent.of(EventType.ROUTED, e) for e in envelopes]
    first = envelopes[0]
    projections = _SEP.join([e.kind for e in envelopes])
    return [AuditEvent(EventType.ROUTED, first.message_id, first.municipality, first.subject, first.sequence,
                       projections, first.source, _SEP.join([e.destination or "" for e in envelopes]),
                       _SEP.join([e.route or "" for e in envelopes]), projections,
                       json.dumps([e.legal_basis for e in envelopes], ensure_ascii=False))]


def _joinable_envelope(envelope: Envelope, first: Envelope) -> bool:
    """What `_joinable` and `_same_change` ask of the events AuditEvent.of makes."""
    destination, route = envelope.destination, envelope.route
    if not destination or route is None or _SEP in destination or _SEP in route or _SEP in envelope.kind:
        return False
    return (envelope.message_id == first.message_id and envelope.subject == first.subject
            and envelope.municipality == first.municipality and envelope.sequence == first.sequence
            and envelope.source == first.source)


def join(events: Sequence[AuditEvent]) -> list[AuditEvent]:
    """`events` with each run of two or more joinable `routed` events of one message made one."""
    out: list[AuditEvent] = []
    run: list[AuditEvent] = []
    for event in events:
        if run and _same_change(run[0], event):
            run.append(event)
            continue
        out.extend(_joined(run))
        run = [event] if _joinable(event) else []
        if not run:
            out.append(event)
    out.extend(_joined(run))
    return out


def is_joined(event: AuditEvent) -> bool:
    """A `routed` record naming several destinations."""
    return event.event == EventType.ROUTED and event.destination is not None and _SEP in event.destination


def split(event: AuditEvent) -> list[AuditEvent]:
    """One event per destination of a joined `routed` record (any other event: itself)."""
    if not is_joined(event):
        return [event]
    destinations = (event.destination or "").split(_SEP)
    routes = (event.route or "").split(_SEP)
    projections = (event.projection or "").split(_SEP)
    try:
        bases = json.loads(event.legal_basis or "[]")
    except ValueError:
        bases = None
    if not isinstance(bases, list) or not len(destinations) == len(routes) == len(projections) == len(bases):
        return [event]  # not written by join (altered?): shown as stored; verify judges its hash
    return [replace(event, destination=d, route=r, kind=p, projection=p, legal_basis=b)
            for d, r, p, b in zip(destinations, routes, projections, bases, strict=True)]


def split_records(records: Iterable[AuditRecord]) -> list[AuditRecord]:
    """`records` with each joined `routed` record as one record per destination (same seq and hash)."""
    out: list[AuditRecord] = []
    for record in records:
        if is_joined(record.event):
            out.extend(AuditRecord(record.seq, record.prev_hash, record.hash, e) for e in split(record.event))
        else:
            out.append(record)
    return out


def _joinable(event: AuditEvent) -> bool:
    return (event.event == EventType.ROUTED and event.destination is not None and _SEP not in event.destination
            and event.message_id is not None
            and event.route is not None and event.projection is not None
            and not event.codes and event.receipt is None and event.actor is None and event.reason is None
            and event.attempt is None and event.kind == event.projection  # a projection's kind, as AuditEvent.of
            and _SEP not in event.route + event.projection)


def _same_change(first: AuditEvent, event: AuditEvent) -> bool:
    return (_joinable(event) and event.message_id == first.message_id and event.subject == first.subject
            and event.municipality == first.municipality and event.sequence == first.sequence
            and event.source == first.source)


def _joined(run: list[AuditEvent]) -> list[AuditEvent]:
    if len(run) < 2:
        return run
    projections = _SEP.join(e.projection or "" for e in run)
    return [replace(run[0], destination=_SEP.join(e.destination or "" for e in run),
                    route=_SEP.join(e.route or "" for e in run), kind=projections, projection=projections,
                    legal_basis=json.dumps([e.legal_basis for e in run], ensure_ascii=False))]
