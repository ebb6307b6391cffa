"""The bus's own state in PostgreSQL (`[state] store = "postgresql://…"`): what bus.state keeps
in one host's SQLite file — seen and routed ids, rejected messages, counters — shared by every
intake and router process of every host, so a source re-sending a change hears "duplicate"
whichever process takes it, and a message redelivered to another router is not routed twice.

Tables in the schema `renkei_state` (URL `?schema=` for another). Every method is one
transaction; the counters are bumped with `INSERT … ON CONFLICT DO UPDATE`, which PostgreSQL
makes atomic across processes. `rejected` holds the rejected messages' raw bytes: 特定個人情報
territory, like the SQLite file.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence

from bus.pg import Cursor, PgDatabase, read_once
from bus.state import RejectedMessage, StateSnapshot
from bus.validation.issues import Issue

__all__ = ["SCHEMA", "PostgresStateStore"]

SCHEMA = "renkei_state"
_DDL = """
CREATE TABLE IF NOT EXISTS seen (message_id TEXT PRIMARY KEY, kind TEXT, at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS routed (message_id TEXT PRIMARY KEY, destinations INTEGER NOT NULL,
    at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, source TEXT NOT NULL, content_type TEXT NOT NULL,
    kind TEXT, codes TEXT NOT NULL, issues TEXT NOT NULL, raw BYTEA NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS counters (
    scope TEXT NOT NULL, name TEXT NOT NULL, counter TEXT NOT NULL, value BIGINT NOT NULL,
    PRIMARY KEY (scope, name, counter));
"""
_COUNT = ("INSERT INTO counters VALUES (%s, %s, %s, %s) ON CONFLICT (scope, name, counter)"
          " DO UPDATE SET value = counters.value + excluded.value")


def _snapshot(cur: Cursor) -> StateSnapshot:
    counters: dict[str, dict[str, dict[str, int]]] = {}
    for scope, name, counter, value in cur.execute("SELECT scope, name, counter, value FROM counters"):
        counters.setdefault(scope, {}).setdefault(name, {})[counter] = int(value)
    seen = cur.execute("SELECT count(*) FROM seen").fetchone()
    rejected = cur.execute("SELECT count(*) FROM rejected").fetchone()
    return StateSnapshot(counters, int(seen[0]) if seen else 0, int(rejected[0]) if rejected else 0)


class PostgresStateStore:
    """StateStoreProtocol on PostgreSQL; thread-safe (one connection behind a lock)."""

    def __init__(self, url: str) -> None:
        self._db = PgDatabase(url, schema=SCHEMA, ddl=_DDL, what="state store")
        self.location = self._db.location

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def snapshot(url: str) -> StateSnapshot | None:
        """Read-only, on a connection of its own; None: no bus has used this store yet."""
        return read_once(url, SCHEMA, _snapshot, what="state store")

    def current(self) -> StateSnapshot:
        with self._db.read() as cur:
            return _snapshot(cur)

    # -- seen / routed ---------------------------------------------------------------
    def is_seen(self, message_id: str) -> bool:
        with self._db.read() as cur:
            return cur.execute("SELECT 1 FROM seen WHERE message_id = %s", (message_id,)).fetchone() is not None

    def seen_among(self, message_ids: Sequence[str]) -> set[str]:
        """Which of `message_ids` were accepted before: a batch's `is_seen` in one query."""
        if not message_ids:
            return set()
        with self._db.read() as cur:
            rows = cur.execute("SELECT message_id FROM seen WHERE message_id = ANY(%s)", (list(message_ids),))
            return {row[0] for row in rows.fetchall()}

    def mark_seen(self, message_id: str, kind: str) -> None:
        self.mark_seen_many([(message_id, kind)])

    def mark_seen_many(self, seen: Sequence[tuple[str, str]]) -> None:
        """(message id, kind) of each accepted message, in one transaction (the intake's batch)."""
        now = time.time()
        with self._db.tx() as cur:
            cur.executemany("INSERT INTO seen VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                            [(message_id, kind, now) for message_id, kind in seen])

    def is_routed(self, message_id: str) -> bool:
        with self._db.read() as cur:
            return cur.execute("SELECT 1 FROM routed WHERE message_id = %s", (message_id,)).fetchone() is not None

    def routed_among(self, message_ids: Sequence[str]) -> set[str]:
        """Which of `message_ids` are routed: a batch's `is_routed` in one query."""
        if not message_ids:
            return set()
        with self._db.read() as cur:
            rows = cur.execute("SELECT message_id FROM routed WHERE message_id = ANY(%s)", (list(message_ids),))
            return {row[0] for row in rows.fetchall()}

    def mark_routed(self, message_id: str, destinations: int) -> None:
        with self._db.tx() as cur:
            cur.execute("INSERT INTO routed VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        (message_id, destinations, time.time()))

    def record_routed(self, message_id: str, destinations: Sequence[str]) -> None:
        self.record_routed_many([(message_id, destinations)])

    def record_routed_many(self, routed: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Mark each routed and count one "routed" per destination, in one transaction."""
        counts = Counter(d for _, destinations in routed for d in destinations)
        now = time.time()
        with self._db.tx() as cur:
            cur.executemany("INSERT INTO routed VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                            [(message_id, len(destinations), now) for message_id, destinations in routed])
            # in a fixed order: two routers bumping the same rows never wait on each other in a cycle
            cur.executemany(_COUNT, [("destination", d, "routed", n) for d, n in sorted(counts.items())])

    # -- rejected --------------------------------------------------------------------
    def add_rejected(self, raw: bytes, *, source: str, content_type: str, kind: str | None,
                     issues: list[Issue]) -> int:
        codes = sorted({i.code for i in issues})
        with self._db.tx() as cur:
            row = cur.execute(
                "INSERT INTO rejected (source, content_type, kind, codes, issues, raw, at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (source, content_type, kind, ",".join(codes),
                 json.dumps([i.to_dict() for i in issues], ensure_ascii=False), raw, time.time()),
            ).fetchone()
        return int(row[0]) if row else 0

    def rejected(self, limit: int = 100) -> list[RejectedMessage]:
        with self._db.read() as cur:
            rows = cur.execute("SELECT id, source, content_type, kind, codes, issues, at FROM rejected"
                               " ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
        return [RejectedMessage(int(r[0]), r[1], r[2], r[3],
                                r[4].split(","), json.loads(r[5]), float(r[6])) for r in rows]

    # -- counters --------------------------------------------------------------------
    def count(self, scope: str, name: str, counter: str, by: int = 1) -> None:
        with self._db.tx() as cur:
            cur.execute(_COUNT, (scope, name, counter, by))

    def count_many(self, counts: Sequence[tuple[str, str, str]]) -> None:
        """One bump per (scope, name, counter) of `counts`, in one transaction, in key order."""
        summed: dict[tuple[str, str, str], int] = {}
        for key in counts:
            summed[key] = summed.get(key, 0) + 1
        with self._db.tx() as cur:
            cur.executemany(_COUNT, [(*key, by) for key, by in sorted(summed.items())])

    def counters(self, scope: str) -> dict[str, dict[str, int]]:
        with self._db.read() as cur:
            rows = cur.execute("SELECT name, counter, value FROM counters WHERE scope = %s", (scope,)).fetchall()
        result: dict[str, dict[str, int]] = {}
        for name, counter, value in rows:
            result.setdefault(name, {})[counter] = int(value)
        return result
