"""The delivery store: parked residents, the messages held behind them, and the dead letters.

One SQLite file (WAL) beside the bus's state, shared by every deliverer process of the host
and by the operator's commands (`renkei dead ...`, `renkei status`).

- `parked`: a (destination, resident) whose head message is retrying or dead. While a
  resident is parked, every later message of it for that destination is *held* here instead
  of being delivered (DESIGN §5: change n+1 never before change n), and the other residents
  keep flowing.
- `held`: those messages, bodies and headers, acked from the broker only after they were
  written here with `synchronous=FULL` (a held message is as durable as a queued one).
- `dead`: the dead letters an operator works (list, show, replay, discard). Personal data
  lives in the bodies: this file is 特定個人情報 territory, like the broker's.

Every method is one short transaction; "hold if parked" and "unpark if nothing is held" are
each atomic, so a message arriving while a resident is released is never stranded.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bus.sqlite import LocalFile, read_only, tables

__all__ = ["DeadFilter", "DeadGroup", "DeadLetter", "DeliverySnapshot", "DeliveryStore", "Held", "Parked"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS parked (
    destination TEXT NOT NULL, subject TEXT NOT NULL, head TEXT NOT NULL,
    status TEXT NOT NULL,            -- retrying | dead | releasing
    since REAL NOT NULL,
    PRIMARY KEY (destination, subject)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY, destination TEXT NOT NULL, subject TEXT NOT NULL, sequence INTEGER NOT NULL,
    message_id TEXT NOT NULL, headers TEXT NOT NULL, body BLOB NOT NULL, at REAL NOT NULL,
    UNIQUE (destination, message_id));
CREATE INDEX IF NOT EXISTS held_by_subject ON held (destination, subject, sequence);
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY, destination TEXT NOT NULL, subject TEXT NOT NULL, municipality TEXT NOT NULL,
    message_id TEXT NOT NULL, sequence INTEGER NOT NULL, code TEXT NOT NULL, reason TEXT NOT NULL,
    attempts INTEGER NOT NULL, first_failed REAL NOT NULL, dead_at REAL NOT NULL,
    headers TEXT NOT NULL, body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'dead',   -- dead | replayed | discarded
    resolved_by TEXT, resolved_reason TEXT, resolved_at REAL);
CREATE INDEX IF NOT EXISTS dead_by_state ON dead (state, destination);
CREATE TABLE IF NOT EXISTS done (
    destination TEXT NOT NULL, message_id TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (destination, message_id)) WITHOUT ROWID;
"""

#: how long a done note is kept (longer than any restart after which the broker hands out again
#: what was unacked when the bus was killed)
DONE_NOTES_KEPT = 7 * 24 * 3600.0

_HELD_COUNTS = "SELECT destination, count(DISTINCT subject), count(*) FROM held GROUP BY destination"
_DEAD_GROUPS = ("SELECT destination, code, count(*), min(dead_at) FROM dead WHERE state = 'dead'"
                " GROUP BY destination, code")
_PARKED_COUNTS = ("SELECT destination, sum(status IN ('retrying', 'releasing')), min(since) FROM parked"
                  " GROUP BY destination")

ParkStatus = Literal["retrying", "dead", "releasing"]


@dataclass(frozen=True, slots=True)
class Parked:
    destination: str
    subject: str
    head: str  # message_id of the change the resident waits on
    status: ParkStatus
    since: float


@dataclass(frozen=True, slots=True)
class Held:
    id: int
    destination: str
    subject: str
    sequence: int
    message_id: str
    headers: dict[str, Any]
    body: bytes


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    destination: str
    subject: str
    municipality: str
    message_id: str
    sequence: int
    code: str
    reason: str
    attempts: int
    first_failed: float
    dead_at: float
    headers: dict[str, Any]
    body: bytes
    state: str
    resolved_by: str | None
    resolved_reason: str | None
    resolved_at: float | None


@dataclass(frozen=True, slots=True)
class DeadFilter:
    destination: str | None = None
    municipality: str | None = None
    code: str | None = None
    since: float | None = None  # dead_at >= since (epoch seconds)
    state: str | None = "dead"  # None: every state

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = ["1=1"]
        args: list[Any] = []
        for column, value in (("destination", self.destination), ("municipality", self.municipality),
                              ("code", self.code), ("state", self.state)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if self.since is not None:
            clauses.append("dead_at >= ?")
            args.append(self.since)
        return " AND ".join(clauses), args


@dataclass(frozen=True, slots=True)
class DeadGroup:
    """The unresolved dead letters of one destination with one code."""

    destination: str
    code: str
    count: int
    oldest: float  # dead_at of the oldest


@dataclass(frozen=True, slots=True)
class DeliverySnapshot:
    """Counts only (no subject, no reason, nothing of a message), in one read: per destination
    the residents waiting on a retry (`retrying`: parked retrying or being released) and since
    when the longest-parked one waits (`parked_since`, every parked resident), the residents
    held back and the changes held behind them (`held`), and the unresolved dead letters."""

    retrying: dict[str, int] = field(default_factory=dict)
    parked_since: dict[str, float] = field(default_factory=dict)
    held: dict[str, tuple[int, int]] = field(default_factory=dict)
    dead: list[DeadGroup] = field(default_factory=list)

    def destinations(self) -> set[str]:
        return set(self.retrying) | set(self.held) | {g.destination for g in self.dead}

    def plus(self, other: DeliverySnapshot) -> DeliverySnapshot:
        """Both together: the delivery stores of several workers (each destination has one)."""
        held = dict(self.held)
        for name, (residents, messages) in other.held.items():
            r, m = held.get(name, (0, 0))
            held[name] = (r + residents, m + messages)
        since = dict(self.parked_since)
        for name, at in other.parked_since.items():
            since[name] = min(at, since.get(name, at))
        retrying = dict(self.retrying)
        for name, n in other.retrying.items():
            retrying[name] = retrying.get(name, 0) + n
        return DeliverySnapshot(retrying, since, held, [*self.dead, *other.dead])


def _snapshot(db: sqlite3.Connection) -> DeliverySnapshot:
    present = tables(db)
    parked = db.execute(_PARKED_COUNTS).fetchall() if "parked" in present else []
    held = db.execute(_HELD_COUNTS).fetchall() if "held" in present else []
    dead = db.execute(_DEAD_GROUPS).fetchall() if "dead" in present else []
    return DeliverySnapshot(
        retrying={d: int(n) for d, n, _ in parked},
        parked_since={d: float(since) for d, _, since in parked},
        held={d: (int(r), int(m)) for d, r, m in held},
        dead=[DeadGroup(d, code, int(n), float(oldest)) for d, code, n, oldest in dead],
    )


_DEAD_COLUMNS = ("id, destination, subject, municipality, message_id, sequence, code, reason, attempts,"
                 " first_failed, dead_at, headers, body, state, resolved_by, resolved_reason, resolved_at")


class DeliveryStore:
    """Thread-safe; every call is one short transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        # FULL: a held message has been acked from the broker
        self._file = LocalFile(path, synchronous="FULL", schema=_SCHEMA)
        self._tx = self._file.tx

    def close(self) -> None:
        self._file.close()

    def current(self) -> DeliverySnapshot:
        """The snapshot of this open store (bus.store_protocols)."""
        with self._file.read() as db:
            return _snapshot(db)

    def claim(self, where: str, subject: str) -> bool:
        """Always granted: one process delivers a destination of a local file (bus.store_protocols)."""
        return True

    def unclaim(self, where: str, subject: str) -> None:
        """Nothing to give back (`claim`)."""

    @staticmethod
    def snapshot(path: Path) -> DeliverySnapshot | None:
        """The delivery store at `path`, read-only and in one read (never created; safe while
        deliverers write it). None: no file; StoreUnreadable: a damaged one."""
        return read_only(path, _snapshot)

    # -- parked residents ------------------------------------------------------------------

    def parked(self, destination: str, subject: str) -> Parked | None:
        with self._file.read() as db:
            row = db.execute("SELECT destination, subject, head, status, since FROM parked"
                                   " WHERE destination = ? AND subject = ?", (destination, subject)).fetchone()
        return Parked(*row) if row else None

    def parked_among(self, destination: str, subjects: Sequence[str]) -> dict[str, Parked]:
        """The parkings at `destination` of those of `subjects` that are parked: a batch's
        `parked`, one query per 500."""
        found: dict[str, Parked] = {}
        with self._file.read() as db:
            for start in range(0, len(subjects), 500):
                chunk = subjects[start:start + 500]
                marks = ",".join("?" * len(chunk))  # placeholders only: no value
                for row in db.execute("SELECT destination, subject, head, status, since FROM parked"  # noqa: S608
                                      f" WHERE destination = ? AND subject IN ({marks})", (destination, *chunk)):
                    found[row[1]] = Parked(*row)
        return found

    def park(self, destination: str, subject: str, head: str, status: ParkStatus) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO parked VALUES (?, ?, ?, ?, ?) ON CONFLICT (destination, subject)"
                       " DO UPDATE SET head = excluded.head, status = excluded.status",
                       (destination, subject, head, status, time.time()))

    def parked_all(self, destination: str | None = None, status: str | None = None) -> list[Parked]:
        sql = "SELECT destination, subject, head, status, since FROM parked WHERE 1=1"
        args: list[Any] = []
        if destination is not None:
            sql += " AND destination = ?"
            args.append(destination)
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        with self._file.read() as db:
            return [Parked(*row) for row in db.execute(sql + " ORDER BY since", args).fetchall()]

    def unpark_if_drained(self, destination: str, subject: str) -> bool:
        """Unpark the resident when nothing is held behind it; False if something is."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM held WHERE destination = ? AND subject = ? LIMIT 1",
                          (destination, subject)).fetchone():
                return False
            db.execute("DELETE FROM parked WHERE destination = ? AND subject = ?", (destination, subject))
            return True

    # -- done notes: a delivered head whose broker copy may come again ---------------------

    def note_done(self, destination: str, message_id: str) -> None:
        """Note durably that `message_id` was delivered at `destination` (and forget notes
        older than DONE_NOTES_KEPT)."""
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO done VALUES (?, ?, ?)", (destination, message_id, now))
            db.execute("DELETE FROM done WHERE at < ?", (now - DONE_NOTES_KEPT,))

    def was_done(self, destination: str, message_id: str) -> bool:
        with self._file.read() as db:
            return db.execute("SELECT 1 FROM done WHERE destination = ? AND message_id = ?",
                              (destination, message_id)).fetchone() is not None

    # -- held messages ---------------------------------------------------------------------

    def hold(self, destination: str, subject: str, sequence: int, message_id: str,
             headers: dict[str, Any], body: bytes) -> bool:
        """Keep a message behind its parked resident; False (nothing kept) if not parked."""
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM parked WHERE destination = ? AND subject = ?",
                              (destination, subject)).fetchone():
                return False
            db.execute("INSERT OR IGNORE INTO held (destination, subject, sequence, message_id, headers, body, at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (destination, subject, sequence, message_id, json.dumps(headers, ensure_ascii=False),
                        body, time.time()))
            return True

    def next_held(self, destination: str, subject: str) -> Held | None:
        with self._file.read() as db:
            row = db.execute(
                "SELECT id, destination, subject, sequence, message_id, headers, body FROM held"
                " WHERE destination = ? AND subject = ? ORDER BY sequence, id LIMIT 1", (destination, subject)
            ).fetchone()
        if row is None:
            return None
        return Held(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6])

    def drop_held(self, held_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM held WHERE id = ?", (held_id,))

    def held_counts(self) -> dict[str, tuple[int, int]]:
        """destination → (residents held back, messages held)."""
        with self._file.read() as db:
            rows = db.execute(_HELD_COUNTS).fetchall()
        return {d: (residents, messages) for d, residents, messages in rows}

    # -- dead letters ----------------------------------------------------------------------

    def add_dead(self, *, destination: str, subject: str, municipality: str, message_id: str, sequence: int,
                 code: str, reason: str, attempts: int, first_failed: float, headers: dict[str, Any],
                 body: bytes) -> int:
        """Record a dead letter and park its resident behind it (one transaction)."""
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO dead (destination, subject, municipality, message_id, sequence, code, reason, attempts,"
                " first_failed, dead_at, headers, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (destination, subject, municipality, message_id, sequence, code, reason[:500], attempts,
                 first_failed, now, json.dumps(headers, ensure_ascii=False), body),
            )
            db.execute("INSERT INTO parked VALUES (?, ?, ?, 'dead', ?) ON CONFLICT (destination, subject)"
                       " DO UPDATE SET head = excluded.head, status = 'dead'", (destination, subject, message_id, now))
            return int(cur.lastrowid or 0)

    def dead(self, dead_id: int) -> DeadLetter | None:
        with self._file.read() as db:
            row = db.execute(f"SELECT {_DEAD_COLUMNS} FROM dead WHERE id = ?", (dead_id,)).fetchone()  # noqa: S608
        return _dead(row) if row else None

    def dead_list(self, where: DeadFilter | None = None, limit: int = 1000) -> list[DeadLetter]:
        clause, args = (where or DeadFilter()).where()
        with self._file.read() as db:
            rows = db.execute(f"SELECT {_DEAD_COLUMNS} FROM dead WHERE {clause} ORDER BY id LIMIT ?",  # noqa: S608
                                    (*args, limit)).fetchall()
        return [_dead(row) for row in rows]

    def dead_counts(self) -> dict[str, int]:
        """destination → dead letters not yet resolved."""
        with self._file.read() as db:
            rows = db.execute(_DEAD_GROUPS).fetchall()
        counts: dict[str, int] = {}
        for destination, _, n, _ in rows:
            counts[destination] = counts.get(destination, 0) + int(n)
        return counts

    def resolve_dead(self, dead_id: int, state: Literal["replayed", "discarded"], by: str, reason: str) -> bool:
        """Mark a dead letter replayed or discarded; False if it was not dead (any more)."""
        with self._tx() as db:
            cur = db.execute("UPDATE dead SET state = ?, resolved_by = ?, resolved_reason = ?, resolved_at = ?"
                             " WHERE id = ? AND state = 'dead'", (state, by, reason[:500], time.time(), dead_id))
            return cur.rowcount == 1


def _dead(row: tuple[Any, ...]) -> DeadLetter:
    values = list(row)
    values[11] = json.loads(values[11])
    return DeadLetter(*values)
