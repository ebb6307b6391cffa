"""The report of `renkei status` (JSON schema `renkei.status/2`): what each figure means and
where it comes from is in the package docstring (bus/status/__init__.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bus.ingests import IngestProgress, ingest_dict
from bus.urls import without_password as display_url

__all__ = [
    "NOT_REPORTED", "STATUS_SCHEMA", "DeadLetterSummary", "DeliveryFigures", "DestinationStatus", "ProcessInfo",
    "QueueFigures", "SourceStatus", "StatusReport", "display_url", "source_statuses", "with_rates",
]

STATUS_SCHEMA = "renkei.status/2"

#: figure → why it is not reported; the JSON carries these keys with null values
NOT_REPORTED: dict[str, str] = {
    "delayed": "RabbitMQ's waiting retries are held by a mover, counted only by the management API "
               "(`retrying` counts the residents waiting on one)",
    "oldest_age_seconds": "neither broker records an enqueue time that status can read "
                          "(oldest_parked_age_seconds: how long the longest-parked resident has waited)",
    "rate_per_second": "computed between two refreshes: use --watch",
}
#: the figures of the delivery store, null (and explained so) when its file cannot be read
DELIVERY_FIGURES = ("retrying", "held", "held_messages", "dead", "oldest_parked_age_seconds")
DELIVERY_UNREADABLE = "the delivery store could not be read (see notes)"


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """One queue as the broker (and the bus processes' reports) see it; None = not known."""

    queue: str
    ready: int | None
    in_flight: int | None
    consumers: int | None
    declared: bool = True
    delayed: int | None = None  # waiting for a delay to pass (a retry tier), not in `ready`

    def to_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "declared": self.declared, "ready": self.ready,
                "in_flight": self.in_flight, "consumers": self.consumers, "delayed": self.delayed}


@dataclass(frozen=True, slots=True)
class DeliveryFigures:
    """One destination in the delivery store (bus.delivery.store); None = the store could not be read."""

    retrying: int | None = 0  # residents parked behind a change waiting for a retry, or being released
    held_residents: int | None = 0  # residents whose later changes are held back
    held_messages: int | None = 0  # those changes
    dead: int | None = 0  # dead letters not yet replayed or discarded
    oldest_parked_age: float | None = 0.0  # seconds the longest-parked resident has waited; 0: none parked


@dataclass(frozen=True, slots=True)
class DeadLetterSummary:
    """The unresolved dead letters of the delivery store (`renkei dead list` shows them); counts only."""

    total: int | None = 0
    by_destination: dict[str, int] = field(default_factory=dict)
    by_code: dict[str, int] = field(default_factory=dict)
    oldest_age: float | None = 0.0  # seconds since the oldest was dead-lettered; 0: none

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "by_destination": dict(sorted(self.by_destination.items())),
                "by_code": dict(sorted(self.by_code.items())), "oldest_age_seconds": _round(self.oldest_age)}


@dataclass(frozen=True, slots=True)
class DestinationStatus:
    name: str
    sink: str | None  # the configured transport, None: messages wait for a sink
    queue: QueueFigures
    routed: int = 0
    delivered: int = 0  # every receipt, applied or duplicate
    duplicate: int = 0  # receipts where the receiver said it had it already
    retried: int = 0  # deliveries sent to a broker delay tier (each counted)
    attempts: int = 0  # every try of the sink: first tries, in-process retries and tier retries
    dead_lettered: int = 0  # every dead-lettering ever (the counter), replayed and discarded ones too
    delivery: DeliveryFigures = field(default_factory=DeliveryFigures)
    rate: float | None = None  # delivered per second between two --watch refreshes

    def to_dict(self) -> dict[str, Any]:
        d = self.delivery
        return {
            "name": self.name, "queue": self.queue.queue, "sink": self.sink, "declared": self.queue.declared,
            "ready": self.queue.ready, "in_flight": self.queue.in_flight, "consumers": self.queue.consumers,
            "routed": self.routed, "delivered": self.delivered, "duplicate": self.duplicate,
            "attempts": self.attempts, "retried": self.retried, "retrying": d.retrying, "held": d.held_residents,
            "held_messages": d.held_messages, "dead": d.dead, "dead_lettered_total": self.dead_lettered,
            "delayed": self.queue.delayed, "oldest_age_seconds": None,
            "oldest_parked_age_seconds": _round(d.oldest_parked_age), "rate_per_second": _round(self.rate, 2),
        }


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rate: float | None = None  # accepted per second between two --watch refreshes
    forbidden: int = 0  # refused for another municipality's change (A403)
    tokens: dict[str, int] = field(default_factory=dict)  # token id → authenticated requests

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "accepted": self.accepted, "duplicate": self.duplicate,
                "rejected": self.rejected, "forbidden": self.forbidden, "rate_per_second": _round(self.rate, 2),
                "tokens": dict(sorted(self.tokens.items()))}


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A live bus process, from its report."""

    pid: int
    role: str
    intake: str | None
    started: float
    heartbeat: float
    queues: dict[str, dict[str, int]]

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "role": self.role, "intake": self.intake,
                "started": _iso(self.started), "heartbeat": _iso(self.heartbeat),
                "queues": sorted(self.queues)}


@dataclass(frozen=True, slots=True)
class StatusReport:
    at: float
    broker: str
    where: str
    intake: QueueFigures
    dead_letters: DeadLetterSummary
    destinations: list[DestinationStatus]
    sources: list[SourceStatus]
    processes: list[ProcessInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    broker_reachable: bool = True
    unseen: list[str] = field(default_factory=list)  # what could not be seen: `renkei status` exits 1
    state_dirs: list[str] = field(default_factory=list)  # the state directories read
    #: bulk files being ingested (or finished within a day): bus.ingests
    ingests: list[IngestProgress] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unseen

    @property
    def delayed_known(self) -> bool:
        return self.intake.delayed is not None  # the broker counts its delayed messages

    @property
    def delivery_known(self) -> bool:
        return self.dead_letters.total is not None

    def not_reported(self) -> dict[str, str]:
        """figure → why it is null in this report."""
        watched = any(d.rate is not None for d in self.destinations) or any(s.rate is not None for s in self.sources)
        found = {k: v for k, v in NOT_REPORTED.items()
                 if not (watched and k == "rate_per_second") and not (k == "delayed" and self.delayed_known)}
        if not self.delivery_known:
            found.update(dict.fromkeys(DELIVERY_FIGURES, DELIVERY_UNREADABLE))
        return found

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON form (`renkei status --json`); every key is always present."""
        return {
            "schema": STATUS_SCHEMA,
            "at": _iso(self.at),
            "broker": {"name": self.broker, "where": self.where, "reachable": self.broker_reachable},
            "queues": {"intake": self.intake.to_dict()},
            "destinations": [d.to_dict() for d in self.destinations],
            "dead_letters": self.dead_letters.to_dict(),
            "sources": [s.to_dict() for s in self.sources],
            "processes": [p.to_dict() for p in self.processes],
            "not_reported": self.not_reported(),
            "notes": list(self.notes),
            "complete": self.complete,
            "unseen": list(self.unseen),
            "state_dirs": list(self.state_dirs),
            "ingests": [ingest_dict(p) for p in self.ingests],
        }





def with_rates(report: StatusReport, previous: StatusReport | None) -> StatusReport:
    """`report` with delivered/accepted per second since `previous` (a --watch refresh)."""
    if previous is None or report.at <= previous.at:
        return report
    elapsed = report.at - previous.at
    before_d = {d.name: d.delivered for d in previous.destinations}
    before_s = {s.name: s.accepted for s in previous.sources}
    destinations = [dataclasses.replace(d, rate=max(0, d.delivered - before_d.get(d.name, 0)) / elapsed)
                    for d in report.destinations]
    sources = [dataclasses.replace(s, rate=max(0, s.accepted - before_s.get(s.name, 0)) / elapsed)
               for s in report.sources]
    return dataclasses.replace(report, destinations=destinations, sources=sources)


def source_statuses(submitted: dict[str, dict[str, int]], tokens: dict[str, dict[str, int]]) -> list[SourceStatus]:
    """Every source that submitted or authenticated, with what it sent and the tokens it used."""
    result = []
    for name in sorted(submitted.keys() | tokens.keys()):
        c = submitted.get(name, {})
        result.append(SourceStatus(name, c.get("accepted", 0), c.get("duplicate", 0), c.get("rejected", 0),
                                   forbidden=c.get("forbidden", 0), tokens=dict(tokens.get(name, {}))))
    return result


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

