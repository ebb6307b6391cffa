"""The bus's own state, in one SQLite file (WAL): what it has seen, routed and rejected.

- `seen`: message ids accepted at intake, so a source re-sending a change hears "duplicate".
- `routed`: message ids the router has fanned out, so a redelivered or doubly accepted
  message is dropped before it reaches the destinations again.
- `rejected`: every rejected message, raw bytes and issues — a rejected message is never
  lost (DESIGN §3 step 5). This table holds personal data: 特定個人情報 territory.
- `counters`: accepted/rejected/duplicate per source, delivered/dead per destination,
  read by `renkei status`.

One host only: with several bus hosts this moves to PostgreSQL (issue: audit stores).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bus.sqlite import LocalFile, read_only, tables
from bus.validation.issues import Issue

__all__ = ["RejectedMessage", "StateSnapshot", "StateStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (message_id TEXT PRIMARY KEY, kind TEXT, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS routed (message_id TEXT PRIMARY KEY, destinations INTEGER NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, content_type TEXT NOT NULL,
    kind TEXT, codes TEXT NOT NULL, issues TEXT NOT NULL, raw BLOB NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (
    scope TEXT NOT NULL, name TEXT NOT NULL, counter TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (scope, name, counter));
"""
_COUNT = ("INSERT INTO counters VALUES (?,?,?,?) ON CONFLICT (scope, name, counter)"
          " DO UPDATE SET value = value + excluded.value")


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    id: int
    source: str
    content_type: str
    kind: str | None
    codes: list[str]
    issues: list[dict[str, object]]
    at: float


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """What `renkei status` reads of the state file: scope → name → counter → value (scopes
    `source`, `destination`, `token`), and how many message ids were accepted and routed."""

    counters: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    seen: int = 0
    rejected: int = 0

    def scope(self, scope: str) -> dict[str, dict[str, int]]:
        return self.counters.get(scope, {})

    def plus(self, other: StateSnapshot) -> StateSnapshot:
        """Both summed: the bus's processes each count what they did in their own file."""
        counters = {scope: {name: dict(values) for name, values in names.items()}
                    for scope, names in self.counters.items()}
        for scope, names in other.counters.items():
            for name, values in names.items():
                mine = counters.setdefault(scope, {}).setdefault(name, {})
                for counter, value in values.items():
                    mine[counter] = mine.get(counter, 0) + value
        return StateSnapshot(counters, self.seen + other.seen, self.rejected + other.rejected)


def _snapshot(db: sqlite3.Connection) -> StateSnapshot:
    present = tables(db)
    counters: dict[str, dict[str, dict[str, int]]] = {}
    if "counters" in present:
        for scope, name, counter, value in db.execute("SELECT scope, name, counter, value FROM counters"):
            counters.setdefault(scope, {}).setdefault(name, {})[counter] = int(value)
    seen = db.execute("SELECT count(*) FROM seen").fetchone()[0] if "seen" in present else 0
    rejected = db.execute("SELECT count(*) FROM rejected").fetchone()[0] if "rejected" in present else 0
    return StateSnapshot(counters, int(seen), int(rejected))


class StateStore:
    """Thread-safe access to the state file; every call is one short transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._file = LocalFile(path, synchronous="NORMAL", schema=_SCHEMA)  # WAL + NORMAL survives process crashes
        self._tx = self._file.tx

    def close(self) -> None:
        self._file.close()

    def current(self) -> StateSnapshot:
        """The snapshot of this open store (bus.store_protocols)."""
        with self._file.read() as db:
            return _snapshot(db)

    @staticmethod
    def snapshot(path: Path) -> StateSnapshot | None:
        """The state file at `path`, read-only and in one read (never created; safe while the
        bus writes it). None: no file (no bus has run there); StoreUnreadable: a damaged one."""
        return read_only(path, _snapshot)

    # -- seen / routed ---------------------------------------------------------------
    def is_seen(self, message_id: str) -> bool:
        with self._file.read() as db:
            row = db.execute("SELECT 1 FROM seen WHERE message_id = ?", (message_id,)).fetchone()
        return row is not None

    def seen_among(self, message_ids: Sequence[str]) -> set[str]:
        """Which of `message_ids` were accepted before: a batch's `is_seen`, one query per 500
        (the intake's batch of concurrent requests)."""
        found: set[str] = set()
        with self._file.read() as db:
            for start in range(0, len(message_ids), 500):
                chunk = message_ids[start:start + 500]
                marks = ",".join("?" * len(chunk))  # placeholders only: no value
                found.update(row[0] for row in db.execute(
                    f"SELECT message_id FROM seen WHERE message_id IN ({marks})", chunk))  # noqa: S608
        return found

    def mark_seen(self, message_id: str, kind: str) -> None:
        self.mark_seen_many([(message_id, kind)])

    def mark_seen_many(self, seen: Sequence[tuple[str, str]]) -> None:
        """(message id, kind) of each accepted message, in one transaction (the intake's batch)."""
        now = time.time()
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", [(m, k, now) for m, k in seen])

    def is_routed(self, message_id: str) -> bool:
        with self._file.read() as db:
            row = db.execute("SELECT 1 FROM routed WHERE message_id = ?", (message_id,)).fetchone()
        return row is not None

    def routed_among(self, message_ids: Sequence[str]) -> set[str]:
        """Which of `message_ids` are routed: a batch's `is_routed`, one query per 500."""
        found: set[str] = set()
        with self._file.read() as db:
            for start in range(0, len(message_ids), 500):
                chunk = message_ids[start:start + 500]
                marks = ",".join("?" * len(chunk))  # placeholders only: no value
                found.update(row[0] for row in db.execute(
                    f"SELECT message_id FROM routed WHERE message_id IN ({marks})", chunk))  # noqa: S608
        return found

    def mark_routed(self, message_id: str, destinations: int) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO routed VALUES (?, ?, ?)", (message_id, destinations, time.time()))

    def record_routed(self, message_id: str, destinations: Sequence[str]) -> None:
        """Mark `message_id` routed and count one "routed" per destination, in one transaction
        (the router's per-message write: one commit instead of one per destination)."""
        self.record_routed_many([(message_id, destinations)])

    def record_routed_many(self, routed: Sequence[tuple[str, Sequence[str]]]) -> None:
        """`record_routed` for several messages in one transaction (the router's group commit)."""
        counts = Counter(d for _, destinations in routed for d in destinations)
        now = time.time()
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO routed VALUES (?, ?, ?)",
                           [(message_id, len(destinations), now) for message_id, destinations in routed])
            db.executemany(_COUNT, [("destination", d, "routed", n) for d, n in counts.items()])

    # -- rejected --------------------------------------------------------------------
    def add_rejected(
        self, raw: bytes, *, source: str, content_type: str, kind: str | None, issues: list[Issue]
    ) -> int:
        codes = sorted({i.code for i in issues})
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO rejected (source, content_type, kind, codes, issues, raw, at) VALUES (?,?,?,?,?,?,?)",
                (source, content_type, kind, ",".join(codes),
                 json.dumps([i.to_dict() for i in issues], ensure_ascii=False), raw, time.time()),
            )
            return int(cur.lastrowid or 0)

    def rejected(self, limit: int = 100) -> list[RejectedMessage]:
        with self._file.read() as db:
            rows = db.execute(
                "SELECT id, source, content_type, kind, codes, issues, at FROM rejected ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [RejectedMessage(r[0], r[1], r[2], r[3], r[4].split(","), json.loads(r[5]), r[6]) for r in rows]

    # -- counters --------------------------------------------------------------------
    def count(self, scope: str, name: str, counter: str, by: int = 1) -> None:
        with self._tx() as db:
            db.execute(_COUNT, (scope, name, counter, by))

    def count_many(self, counts: Sequence[tuple[str, str, str]]) -> None:
        """One bump per (scope, name, counter) of `counts`, in one transaction (a group commit's)."""
        summed: dict[tuple[str, str, str], int] = {}
        for key in counts:
            summed[key] = summed.get(key, 0) + 1
        with self._tx() as db:
            db.executemany(_COUNT, [(*key, by) for key, by in summed.items()])

    def counters(self, scope: str) -> dict[str, dict[str, int]]:
        with self._file.read() as db:
            rows = db.execute("SELECT name, counter, value FROM counters WHERE scope = ?", (scope,)).fetchall()
        result: dict[str, dict[str, int]] = {}
        for name, counter, value in rows:
            result.setdefault(name, {})[counter] = value
        return result
