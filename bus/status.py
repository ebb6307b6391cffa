"""What `renkei status` reports, gathered read-only from outside the running bus (DESIGN §7).

JSON schema `renkei.status/2` (since the delivery store): per destination `retrying`,
`held`, `held_messages`, `dead` and `oldest_parked_age_seconds` come from the delivery
store, `dead` counts the unresolved dead letters (the counter of every dead-lettering is
`dead_lettered_total`), `delayed` is the former embedded-only `retrying`; the `renkei.dead`
queue is gone from `queues` and a `dead_letters` section (total, by destination, by code)
takes its place. (`renkei.status/1` had `retrying` = delayed rows, `held` always null,
`dead` from the counters, and `queues.dead`.)

Sources of each figure, and why each is honest:

- **embedded broker**: the broker file (SQLite, WAL) opened read-only — ready (waiting and
  ready rows), in flight (leased rows), consumers (of broker instances whose heartbeat is
  fresh and whose process is alive), delayed (rows whose retry delay has not passed yet,
  `visible_at`). A read-only reader never blocks the bus's writer.
- **RabbitMQ**: a passive queue declare — ready and consumers. RabbitMQ tells the
  unacknowledged count only through its management API (not assumed), so in flight is the
  sum of what the bus processes of this state directory report about their own consumers
  (`ProcessReporter`), and null when consumers the reports do not cover exist.
- **state store** (state.sqlite, read-only): per destination routed / delivered /
  duplicate / retried / dead_lettered_total, per source accepted / duplicate / rejected /
  forbidden and `tokens` (token id → requests it authenticated: during a token rotation,
  the old token at 0 can go) (bus.state counters). `forbidden` and `tokens` were added to
  renkei.status/2 later; a reader of the older form ignores them.
- **delivery store** (delivery.sqlite, read-only; absent → zeros), the same on both brokers:
  `retrying` = residents parked behind a change that waits for a retry (or is being
  released), `held` / `held_messages` = residents held back and the later changes held
  behind them (`DeliveryStore.held_counts`), `dead` = dead letters not yet replayed or
  discarded (`DeliveryStore.dead_counts`), `oldest_parked_age_seconds` = how long the
  longest-parked resident has waited (0 when none is parked). Counts only: no subject, no
  reason text, nothing of a message.
- **process reports** (``<state_dir>/processes/*.json``): every `renkei run` process writes
  its pid, role, intake address and its own queues' figures each second; a report whose
  process is gone or whose heartbeat is stale is ignored.

Not reported (null in JSON, "-" in the table, explained under `not_reported`): delayed on
RabbitMQ (its delay queues cannot be listed over AMQP), the age of a queue's oldest message
(neither broker records an enqueue time status can read), the rate except between two
refreshes of ``--watch``, and the delivery store's figures when its file cannot be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bus.brokers import broker_for
from bus.brokers.base import Broker
from bus.brokers.embedded import EmbeddedBroker
from bus.brokers.embedded_store import LEASED, Process
from bus.errors import BrokerError, BrokerUnavailable
from bus.logs import get_logger
from bus.settings import Settings
from bus.topology import INTAKE_QUEUE, destination_queue

__all__ = [
    "NOT_REPORTED",
    "STATUS_SCHEMA",
    "DeadLetterSummary",
    "DeliveryFigures",
    "DestinationStatus",
    "ProcessReporter",
    "QueueFigures",
    "SourceStatus",
    "StatusReport",
    "display_url",
    "gather_status",
    "source_statuses",
    "with_rates",
]

STATUS_SCHEMA = "renkei.status/2"
REPORT_INTERVAL = 1.0
#: how long `ProcessReporter.stop` waits for a report being written (a broker call) to end
STOP_WITHIN = 5.0
log = get_logger("renkei.status")

#: figure → why it is not reported; the JSON carries these keys with null values
NOT_REPORTED: dict[str, str] = {
    "delayed": "RabbitMQ's delay queues cannot be listed over AMQP (`retrying` counts the residents waiting on one)",
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


UNKNOWN_DELIVERY = DeliveryFigures(None, None, None, None, None)


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

    @property
    def delayed_known(self) -> bool:
        return self.broker == "embedded" and self.broker_reachable

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
        }


def display_url(url: str) -> str:
    """A broker URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


# -- gathering ------------------------------------------------------------------------------


async def gather_status(settings: Settings, destinations: Iterable[str] = ()) -> StatusReport:
    """A snapshot of the bus of `settings`: `destinations` (e.g. those of the routes) plus the
    configured ones plus any the counters or the delivery store know."""
    state_dir = settings.bus.state_dir
    notes: list[str] = []
    try:
        counters = _read_counters(state_dir / "state.sqlite")
    except sqlite3.Error as exc:
        notes.append(f"cannot read the state file {state_dir / 'state.sqlite'}: {exc}")
        counters = {}
    if counters is None:
        notes.append(f"no state file at {state_dir / 'state.sqlite'}: the bus has not run with this state_dir")
        counters = {}
    try:
        delivery, dead_letters = _read_delivery(state_dir / "delivery.sqlite", time.time())
    except sqlite3.Error as exc:
        notes.append(f"cannot read the delivery store {state_dir / 'delivery.sqlite'}: {exc}")
        delivery, dead_letters = {}, DeadLetterSummary(None, {}, {}, None)
    names = sorted(set(destinations) | set(settings.destinations) | set(counters.get("destination", {}))
                   | set(delivery))
    queues = [INTAKE_QUEUE, *map(destination_queue, names)]
    processes = read_process_reports(state_dir)
    broker = broker_for(settings)
    reachable = True
    if isinstance(broker, EmbeddedBroker):
        where = str(broker.path)
        try:
            figures = _embedded_figures(broker.path, queues, notes)
        except sqlite3.Error as exc:
            reachable = False
            notes.append(f"cannot read the broker file {broker.path}: {exc}")
            figures = {q: QueueFigures(q, None, None, None) for q in queues}
    else:
        where = display_url(settings.bus.broker_url or "")
        try:
            figures = await _amqp_figures(broker, queues, processes, notes)
        except BrokerUnavailable as exc:
            reachable = False
            notes.append(f"the broker is unreachable: {exc}")
            figures = {q: QueueFigures(q, None, None, None) for q in queues}
    dest_counters = counters.get("destination", {})
    unknown = dead_letters.total is None
    return StatusReport(
        at=time.time(),
        broker=broker.name,
        where=where,
        intake=figures[INTAKE_QUEUE],
        dead_letters=dead_letters,
        destinations=[_destination(n, settings, figures[destination_queue(n)], dest_counters.get(n, {}),
                                   UNKNOWN_DELIVERY if unknown else delivery.get(n, DeliveryFigures()))
                      for n in names],
        sources=source_statuses(counters.get("source", {}), counters.get("token", {})),
        processes=processes,
        notes=notes,
        broker_reachable=reachable,
    )


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


def source_statuses(submitted: dict[str, dict[str, int]], tokens: dict[str, dict[str, int]]) -> list[SourceStatus]:
    """Every source that submitted or authenticated, with what it sent and the tokens it used."""
    result = []
    for name in sorted(submitted.keys() | tokens.keys()):
        c = submitted.get(name, {})
        result.append(SourceStatus(name, c.get("accepted", 0), c.get("duplicate", 0), c.get("rejected", 0),
                                   forbidden=c.get("forbidden", 0), tokens=dict(tokens.get(name, {}))))
    return result


def _read_only(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    db.execute("PRAGMA query_only=1")
    return db


def _read_counters(path: Path) -> dict[str, dict[str, dict[str, int]]] | None:
    """scope → name → counter → value, read-only from the state file (bus.state's `counters`)."""
    if not path.exists():
        return None
    result: dict[str, dict[str, dict[str, int]]] = {}
    with contextlib.closing(_read_only(path)) as db:
        try:
            rows = db.execute("SELECT scope, name, counter, value FROM counters").fetchall()
        except sqlite3.OperationalError:  # a file from before counters existed
            return result
    for scope, name, counter, value in rows:
        result.setdefault(scope, {}).setdefault(name, {})[counter] = int(value)
    return result


def _read_delivery(path: Path, now: float) -> tuple[dict[str, DeliveryFigures], DeadLetterSummary]:
    """Per destination the parked residents, held messages and unresolved dead letters, and
    the dead letters' summary, read-only from the delivery store (bus.delivery.store) in one
    snapshot. The held and dead queries are `DeliveryStore.held_counts` / `dead_counts`
    (tests/unit/test_cli_status.py checks they agree). No file (or no table yet): zeros."""
    if not path.exists():
        return {}, DeadLetterSummary()
    with contextlib.closing(_read_only(path)) as db:
        db.execute("BEGIN")  # one snapshot for every figure
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        parked = db.execute(
            "SELECT destination, sum(status IN ('retrying', 'releasing')), min(since) FROM parked GROUP BY 1"
        ).fetchall() if "parked" in tables else []
        held = db.execute(
            "SELECT destination, count(DISTINCT subject), count(*) FROM held GROUP BY 1"
        ).fetchall() if "held" in tables else []
        dead = db.execute(
            "SELECT destination, code, count(*), min(dead_at) FROM dead WHERE state = 'dead' GROUP BY 1, 2"
        ).fetchall() if "dead" in tables else []
        db.execute("COMMIT")
    retrying = {d: int(n) for d, n, _ in parked}
    oldest = {d: max(0.0, now - float(since)) for d, _, since in parked}
    held_by = {d: (int(r), int(m)) for d, r, m in held}
    by_destination: dict[str, int] = {}
    by_code: dict[str, int] = {}
    for destination, code, n, _ in dead:
        by_destination[destination] = by_destination.get(destination, 0) + int(n)
        by_code[code] = by_code.get(code, 0) + int(n)
    figures = {
        d: DeliveryFigures(retrying=retrying.get(d, 0), held_residents=held_by.get(d, (0, 0))[0],
                           held_messages=held_by.get(d, (0, 0))[1], dead=by_destination.get(d, 0),
                           oldest_parked_age=oldest.get(d, 0.0))
        for d in set(retrying) | set(held_by) | set(by_destination)
    }
    first_dead = min((float(at) for *_, at in dead), default=None)
    summary = DeadLetterSummary(sum(by_destination.values()), by_destination, by_code,
                                0.0 if first_dead is None else max(0.0, now - first_dead))
    return figures, summary


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _embedded_figures(path: Path, queues: list[str], notes: list[str]) -> dict[str, QueueFigures]:
    if not path.exists():
        notes.append(f"no broker file at {path}: the bus has not run with this state_dir")
        return {q: QueueFigures(q, 0, 0, 0, declared=False, delayed=0) for q in queues}
    here = Process.current()
    now = time.time()
    with contextlib.closing(_read_only(path)) as db:
        db.execute("BEGIN")  # one snapshot for every figure
        declared = {row[0] for row in db.execute("SELECT name FROM queues")}
        columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
        delayed = "visible_at > ?" if "visible_at" in columns else "0 AND ?"  # files before delays: none
        counts: dict[tuple[str, int, bool], int] = {
            (q, s, bool(d)): n for q, s, d, n in db.execute(
                f"SELECT queue, state, {delayed}, count(*) FROM messages GROUP BY 1, 2, 3", (now,))  # noqa: S608
        }
        owners = db.execute("SELECT owner, pid, pid_ns, started, heartbeat, lease_timeout FROM owners").fetchall()
        live = {o for o, pid, ns, started, beat, timeout in owners
                if beat >= now - timeout and Process(pid, ns, started).alive(here)}
        consumers: dict[str, int] = {}
        for owner, queue in db.execute("SELECT owner, queue FROM consumers"):
            if owner in live:
                consumers[queue] = consumers.get(queue, 0) + 1
        db.execute("COMMIT")
    result = {}
    for q in queues:
        mine = [(state, late, n) for (queue, state, late), n in counts.items() if queue == q]
        in_flight = sum(n for state, _, n in mine if state == LEASED)
        ready = sum(n for state, late, n in mine if state != LEASED and not late)
        waiting = sum(n for state, late, n in mine if state != LEASED and late)
        result[q] = QueueFigures(q, ready, in_flight, consumers.get(q, 0), declared=q in declared, delayed=waiting)
    return result


async def _amqp_figures(
    broker: Broker, queues: list[str], processes: list[ProcessInfo], notes: list[str]
) -> dict[str, QueueFigures]:
    await broker.connect()
    try:
        result = {}
        uncovered = []
        for q in queues:
            try:
                stats = await broker.stats(q)
            except BrokerUnavailable:
                raise
            except BrokerError:  # not declared (yet)
                result[q] = QueueFigures(q, 0, 0, 0, declared=False)
                continue
            reported = [p.queues[q] for p in processes if q in p.queues]
            covered = sum(r.get("consumers", 0) for r in reported)
            in_flight: int | None = sum(r.get("in_flight", 0) for r in reported)
            if stats.consumers > covered:
                in_flight = None
                uncovered.append(q)
            result[q] = QueueFigures(q, stats.ready, in_flight, stats.consumers)
        if uncovered:
            notes.append("in flight is unknown where consumers run outside this state_dir's bus processes: "
                         + ", ".join(uncovered))
        return result
    finally:
        with contextlib.suppress(BrokerError):
            await broker.close()


# -- process reports ------------------------------------------------------------------------


def read_process_reports(state_dir: Path) -> list[ProcessInfo]:
    """The live bus processes of a state directory, from their report files."""
    here = Process.current()
    now = time.time()
    found = []
    for path in sorted((state_dir / "processes").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            process = Process(int(data["pid"]), str(data["pid_ns"]), str(data["process_started"]))
            fresh = float(data["heartbeat"]) >= now - 3 * float(data["interval"]) - 1
            if fresh and process.alive(here):
                found.append(ProcessInfo(process.pid, str(data["role"]), data.get("intake"),
                                         float(data["started"]), float(data["heartbeat"]),
                                         {str(k): dict(v) for k, v in data["queues"].items()}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # being replaced, or not a report: skip it
    return found


class ProcessReporter:
    """Writes this process's report (see the module docstring) every `interval` seconds."""

    def __init__(self, broker: Broker, queues: list[str], state_dir: Path, *, role: str,
                 intake: str | None = None, interval: float = REPORT_INTERVAL) -> None:
        self._broker, self._queues, self._role, self._intake = broker, queues, role, intake
        self._interval = interval
        self._dir = state_dir / "processes"
        self._path = self._dir / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self._started = time.time()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        await self.write()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        self._stopping = True  # ends the loop even if a broker call swallows the cancellation
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=STOP_WITHIN)
        with contextlib.suppress(OSError):
            self._path.unlink()

    async def _loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._interval)
            try:
                await self.write()
            except (BrokerError, OSError) as exc:
                log.warning("could not write the process report", error=str(exc))

    async def write(self) -> None:
        queues = {}
        for q in list(self._queues):
            stats = await self._broker.stats(q)
            queues[q] = {"in_flight": stats.in_flight, "consumers": 1}
        me = Process.current()
        data = {"pid": me.pid, "pid_ns": me.pid_ns, "process_started": me.started, "role": self._role,
                "intake": self._intake, "started": self._started, "heartbeat": time.time(),
                "interval": self._interval, "queues": queues}
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self._path)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
