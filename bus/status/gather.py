"""Gathering a status report: snapshots of the stores and the broker, combined.

Nothing here reads a file's tables or knows a backend: the state store, the delivery store
and the broker each answer with a read-only snapshot (`StateStore.snapshot`,
`DeliveryStore.snapshot`, `Broker.describe`), the state directories name their files
(bus.topology.StateDir), and the process reports fill RabbitMQ's in-flight figures.
What could not be seen is listed in `StatusReport.unseen` (`renkei status` then exits 1).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from bus.brokers import broker_for
from bus.brokers.base import QueueDescription
from bus.delivery.store import DeliverySnapshot
from bus.errors import StoreUnreadable
from bus.ingests import read_progress
from bus.settings import Settings
from bus.state import StateSnapshot
from bus.status.processes import read_process_reports
from bus.status.report import (
    DeadLetterSummary,
    DeliveryFigures,
    DestinationStatus,
    ProcessInfo,
    QueueFigures,
    StatusReport,
    source_statuses,
)
from bus.topology import INTAKE_QUEUE, StateDir, destination_queue, queues_of

__all__ = ["gather_status"]

UNKNOWN_DELIVERY = DeliveryFigures(None, None, None, None, None)


async def gather_status(settings: Settings, destinations: Iterable[str] = (),
                        more_state_dirs: Sequence[Path] = ()) -> StatusReport:
    """A snapshot of the bus of `settings`: `destinations` (e.g. those of the routes) plus the
    configured ones plus any the counters or the delivery stores know. `more_state_dirs`: the
    state directories of the bus's other processes (a deliverer on another host or volume):
    their counters, delivery stores and process reports are added."""
    dirs = [StateDir(settings.bus.state_dir), *(StateDir(p) for p in more_state_dirs if p != settings.bus.state_dir)]
    notes: list[str] = []
    unseen: list[str] = []
    counters = _counters(dirs, notes, unseen)
    delivery = _deliveries(dirs, notes, unseen)
    processes = [p for d in dirs for p in read_process_reports(d.path)]
    names = sorted(set(destinations) | set(settings.destinations) | set(counters.get("destination", {}))
                   | (delivery.destinations() if delivery else set()))
    broker = broker_for(settings)
    described = await broker.describe(queues_of(names))
    if not described.reachable:
        unseen.append(f"the broker: {described.problem}")
        notes.append(f"the broker is unreachable: {described.problem}" if broker.name != "embedded"
                     else str(described.problem))
    figures, uncovered = _queue_figures(described.queues, processes)
    if uncovered:
        notes.append("in flight is unknown where consumers run outside this state_dir's bus processes: "
                     + ", ".join(uncovered))
    elsewhere = [n for n in names if destination_queue(n) in uncovered]
    if elsewhere and delivery is not None:
        unseen.append("the delivery stores of " + ", ".join(elsewhere) + ": their deliverers run outside the "
                      "state directories read (add theirs with --state-dir)")
    dest_counters = counters.get("destination", {})
    now = time.time()
    return StatusReport(
        at=now,
        broker=described.backend,
        where=described.where,
        intake=figures[INTAKE_QUEUE],
        dead_letters=_dead_summary(delivery, now),
        destinations=[_destination(n, settings, figures[destination_queue(n)], dest_counters.get(n, {}),
                                   _delivery_figures(delivery, n, now)) for n in names],
        sources=source_statuses(counters.get("source", {}), counters.get("token", {})),
        processes=processes,
        notes=notes,
        broker_reachable=described.reachable,
        unseen=unseen,
        state_dirs=[str(d.path) for d in dirs],
        ingests=sorted((p for d in dirs for p in read_progress(d.path)), key=lambda p: -p.updated),
    )


def _counters(dirs: list[StateDir], notes: list[str], unseen: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """The counters of every state directory, summed (each process counts what it did)."""
    total = StateSnapshot()
    for d in dirs:
        try:
            snapshot = d.state_snapshot()
        except StoreUnreadable as exc:
            notes.append(f"cannot read the state file: {exc}")
            unseen.append(f"the counters in {d.state_file}")
            continue
        if snapshot is None:
            notes.append(f"no state file at {d.state_file}: the bus has not run with this state_dir")
            unseen.append(f"the counters: no bus has run with the state directory {d.path}")
            continue
        total = total.plus(snapshot)
    return total.counters


def _deliveries(dirs: list[StateDir], notes: list[str], unseen: list[str]) -> DeliverySnapshot | None:
    """Every state directory's delivery store, merged; None when one cannot be read (its
    figures are then unknown, not zero). No file: no deliverer ran there, nothing is kept."""
    merged = DeliverySnapshot()
    for d in dirs:
        try:
            snapshot = d.delivery_snapshot()
        except StoreUnreadable as exc:
            notes.append(f"cannot read the delivery store: {exc}")
            unseen.append(f"the dead letters, parked and held changes in {d.delivery_file}")
            return None
        merged = merged.plus(snapshot or DeliverySnapshot())
    return merged


def _delivery_figures(delivery: DeliverySnapshot | None, name: str, now: float) -> DeliveryFigures:
    if delivery is None:
        return UNKNOWN_DELIVERY
    residents, messages = delivery.held.get(name, (0, 0))
    since = delivery.parked_since.get(name)
    return DeliveryFigures(retrying=delivery.retrying.get(name, 0), held_residents=residents, held_messages=messages,
                           dead=sum(g.count for g in delivery.dead if g.destination == name),
                           oldest_parked_age=0.0 if since is None else max(0.0, now - since))


def _dead_summary(delivery: DeliverySnapshot | None, now: float) -> DeadLetterSummary:
    if delivery is None:
        return DeadLetterSummary(None, {}, {}, None)
    by_destination: dict[str, int] = {}
    by_code: dict[str, int] = {}
    for g in delivery.dead:
        by_destination[g.destination] = by_destination.get(g.destination, 0) + g.count
        by_code[g.code] = by_code.get(g.code, 0) + g.count
    oldest = min((g.oldest for g in delivery.dead), default=None)
    return DeadLetterSummary(sum(by_destination.values()), by_destination, by_code,
                             0.0 if oldest is None else max(0.0, now - oldest))


def _queue_figures(described: dict[str, QueueDescription],
                   processes: list[ProcessInfo]) -> tuple[dict[str, QueueFigures], list[str]]:
    """The broker's figures; where it cannot tell in flight (RabbitMQ), the sum of what the
    bus processes report of their own consumers, unless consumers they do not cover exist
    (those queues are returned too: their consumers run outside the state directories read)."""
    result = {}
    uncovered = []
    for q, d in described.items():
        in_flight = d.in_flight
        if in_flight is None and d.declared and d.consumers is not None:
            reported = [p.queues[q] for p in processes if q in p.queues]
            if d.consumers <= sum(r.get("consumers", 0) for r in reported):
                in_flight = sum(r.get("in_flight", 0) for r in reported)
            else:
                uncovered.append(q)
        result[q] = QueueFigures(q, d.ready, in_flight, d.consumers, declared=d.declared is not False,
                                 delayed=d.delayed)
    return result, uncovered


def _destination(name: str, settings: Settings, queue: QueueFigures, c: dict[str, int],
                 delivery: DeliveryFigures) -> DestinationStatus:
    config = settings.destinations.get(name)
    return DestinationStatus(
        name=name, sink=config.transport if config else None, queue=queue,
        routed=c.get("routed", 0), delivered=c.get("applied", 0) + c.get("duplicate", 0),
        duplicate=c.get("duplicate", 0), retried=c.get("retried", 0), attempts=c.get("attempts", 0),
        dead_lettered=c.get("dead", 0),
        delivery=delivery,
    )
