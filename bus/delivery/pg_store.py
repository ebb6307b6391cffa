"""The delivery store in PostgreSQL (`[state] store = "postgresql://…"`): parked residents, held
changes, done notes and dead letters shared by every deliverer and router of every host.

What bus.delivery.store keeps in one worker's SQLite file lives here once for the whole bus:
a destination's shards can move from one worker to another (RabbitMQ's single active
consumer) and the new one sees the same parked residents and held changes; a worker can die
with its disk and no dead letter goes with it; `renkei dead` and `renkei status` read the
whole bus from any machine.

Concurrency between processes (each method one transaction, READ COMMITTED):
- "hold if parked" and "unpark if nothing is held" both lock the resident's parked row first
  (`SELECT … FOR UPDATE`): a change held while the resident is released is either seen by the
  release or finds the resident unparked and passes — never stranded;
- a dead letter is resolved with `UPDATE … WHERE state = 'dead'`: two operators replaying the
  same letter, one wins;
- `claim`/`unclaim`: a session advisory lock per (place, resident), so one process at a time
  releases a resident (bus.stages.order.ResidentLine); a killed process's claims end with its
  connection.
The municipality stays a column of the dead letters (multi-tenant filters, as in SQLite).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Literal

from bus.delivery.store import (
    _DEAD_COLUMNS,
    DONE_NOTES_KEPT,
    DeadFilter,
    DeadGroup,
    DeadLetter,
    DeliverySnapshot,
    Held,
    Parked,
    ParkStatus,
)
from bus.pg import Cursor, PgDatabase, read_once

__all__ = ["SCHEMA", "PostgresDeliveryStore"]

SCHEMA = "renkei_state"
_DDL = """
CREATE TABLE IF NOT EXISTS parked (
    destination TEXT NOT NULL, subject TEXT NOT NULL, head TEXT NOT NULL, status TEXT NOT NULL,
    since DOUBLE PRECISION NOT NULL, PRIMARY KEY (destination, subject));
CREATE TABLE IF NOT EXISTS held (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, destination TEXT NOT NULL, subject TEXT NOT NULL,
    sequence BIGINT NOT NULL, message_id TEXT NOT NULL, headers TEXT NOT NULL, body BYTEA NOT NULL,
    at DOUBLE PRECISION NOT NULL, UNIQUE (destination, message_id));
CREATE INDEX IF NOT EXISTS held_by_subject ON held (destination, subject, sequence);
CREATE TABLE IF NOT EXISTS dead (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, destination TEXT NOT NULL, subject TEXT NOT NULL,
    municipality TEXT NOT NULL, message_id TEXT NOT NULL, sequence BIGINT NOT NULL, code TEXT NOT NULL,
    reason TEXT NOT NULL, attempts INTEGER NOT NULL, first_failed DOUBLE PRECISION NOT NULL,
    dead_at DOUBLE PRECISION NOT NULL, headers TEXT NOT NULL, body BYTEA NOT NULL,
    state TEXT NOT NULL DEFAULT 'dead', resolved_by TEXT, resolved_reason TEXT, resolved_at DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS dead_by_state ON dead (state, destination);
CREATE TABLE IF NOT EXISTS done (
    destination TEXT NOT NULL, message_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (destination, message_id));
CREATE INDEX IF NOT EXISTS done_by_age ON done (at);
"""
_HELD_COUNTS = "SELECT destination, count(DISTINCT subject), count(*) FROM held GROUP BY destination"
_DEAD_GROUPS = ("SELECT destination, code, count(*), min(dead_at) FROM dead WHERE state = 'dead'"
                " GROUP BY destination, code")
_PARKED_COUNTS = ("SELECT destination, count(*) FILTER (WHERE status IN ('retrying', 'releasing')), min(since)"
                  " FROM parked GROUP BY destination")
_LOCK_PARKED = "SELECT 1 FROM parked WHERE destination = %s AND subject = %s FOR UPDATE"
_PARK = ("INSERT INTO parked VALUES (%s, %s, %s, %s, %s) ON CONFLICT (destination, subject)"
         " DO UPDATE SET head = excluded.head, status = excluded.status")
_CLAIMS = "renkei.resident"


def _snapshot(cur: Cursor) -> DeliverySnapshot:
    parked = cur.execute(_PARKED_COUNTS).fetchall()
    held = cur.execute(_HELD_COUNTS).fetchall()
    dead = cur.execute(_DEAD_GROUPS).fetchall()
    return DeliverySnapshot(
        retrying={d: int(n) for d, n, _ in parked},
        parked_since={d: float(since) for d, _, since in parked},
        held={d: (int(r), int(m)) for d, r, m in held},
        dead=[DeadGroup(d, code, int(n), float(oldest)) for d, code, n, oldest in dead],
    )


def _dead(row: tuple[Any, ...]) -> DeadLetter:
    values = list(row)
    values[11] = json.loads(values[11])
    values[12] = bytes(values[12])
    return DeadLetter(*values)


class PostgresDeliveryStore:
    """DeliveryStoreProtocol on PostgreSQL; thread-safe (one connection behind a lock)."""

    def __init__(self, url: str) -> None:
        self._db = PgDatabase(url, schema=SCHEMA, ddl=_DDL, what="delivery store")
        self.location = self._db.location

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def snapshot(url: str) -> DeliverySnapshot | None:
        """Read-only, on a connection of its own; None: no bus has used this store yet."""
        return read_once(url, SCHEMA, _snapshot, what="delivery store")

    def current(self) -> DeliverySnapshot:
        with self._db.read() as cur:
            return _snapshot(cur)

    def claim(self, where: str, subject: str) -> bool:
        return self._db.claim(f"{_CLAIMS}:{where}", subject)

    def unclaim(self, where: str, subject: str) -> None:
        self._db.unclaim(f"{_CLAIMS}:{where}", subject)

    # -- parked residents ------------------------------------------------------------------
    def parked(self, destination: str, subject: str) -> Parked | None:
        with self._db.read() as cur:
            row = cur.execute("SELECT destination, subject, head, status, since FROM parked"
                              " WHERE destination = %s AND subject = %s", (destination, subject)).fetchone()
        return Parked(*row) if row else None

    def parked_among(self, destination: str, subjects: Sequence[str]) -> dict[str, Parked]:
        """The parkings at `destination` of those of `subjects` that are parked: a batch's
        `parked` in one query."""
        if not subjects:
            return {}
        with self._db.read() as cur:
            rows = cur.execute("SELECT destination, subject, head, status, since FROM parked"
                               " WHERE destination = %s AND subject = ANY(%s)", (destination, list(subjects)))
            return {row[1]: Parked(*row) for row in rows.fetchall()}

    def park(self, destination: str, subject: str, head: str, status: ParkStatus) -> None:
        with self._db.tx() as cur:
            cur.execute(_PARK, (destination, subject, head, status, time.time()))

    def parked_all(self, destination: str | None = None, status: str | None = None) -> list[Parked]:
        sql = "SELECT destination, subject, head, status, since FROM parked WHERE true"
        args: list[Any] = []
        if destination is not None:
            sql += " AND destination = %s"
            args.append(destination)
        if status is not None:
            sql += " AND status = %s"
            args.append(status)
        with self._db.read() as cur:
            return [Parked(*row) for row in cur.execute((sql + " ORDER BY since").encode(), args).fetchall()]

    def unpark_if_drained(self, destination: str, subject: str) -> bool:
        """Unpark the resident when nothing is held behind it; False if something is."""
        with self._db.tx() as cur:
            cur.execute(_LOCK_PARKED, (destination, subject))
            if cur.execute("SELECT 1 FROM held WHERE destination = %s AND subject = %s LIMIT 1",
                           (destination, subject)).fetchone():
                return False
            cur.execute("DELETE FROM parked WHERE destination = %s AND subject = %s", (destination, subject))
            return True

    # -- done notes ------------------------------------------------------------------------
    def note_done(self, destination: str, message_id: str) -> None:
        now = time.time()
        with self._db.tx() as cur:
            cur.execute("INSERT INTO done VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", (destination, message_id, now))
            cur.execute("DELETE FROM done WHERE at < %s", (now - DONE_NOTES_KEPT,))

    def was_done(self, destination: str, message_id: str) -> bool:
        with self._db.read() as cur:
            return cur.execute("SELECT 1 FROM done WHERE destination = %s AND message_id = %s",
                               (destination, message_id)).fetchone() is not None

    # -- held messages ---------------------------------------------------------------------
    def hold(self, destination: str, subject: str, sequence: int, message_id: str,
             headers: dict[str, Any], body: bytes) -> bool:
        """Keep a message behind its parked resident; False (nothing kept) if not parked."""
        with self._db.tx() as cur:
            if cur.execute(_LOCK_PARKED, (destination, subject)).fetchone() is None:
                return False
            cur.execute("INSERT INTO held (destination, subject, sequence, message_id, headers, body, at)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (destination, subject, sequence, message_id, json.dumps(headers, ensure_ascii=False),
                         body, time.time()))
            return True

    def next_held(self, destination: str, subject: str) -> Held | None:
        with self._db.read() as cur:
            row = cur.execute(
                "SELECT id, destination, subject, sequence, message_id, headers, body FROM held"
                " WHERE destination = %s AND subject = %s ORDER BY sequence, id LIMIT 1", (destination, subject)
            ).fetchone()
        if row is None:
            return None
        return Held(int(row[0]), row[1], row[2], int(row[3]), row[4], json.loads(row[5]), bytes(row[6]))

    def drop_held(self, held_id: int) -> None:
        with self._db.tx() as cur:
            cur.execute("DELETE FROM held WHERE id = %s", (held_id,))

    def held_counts(self) -> dict[str, tuple[int, int]]:
        with self._db.read() as cur:
            rows = cur.execute(_HELD_COUNTS).fetchall()
        return {d: (int(residents), int(messages)) for d, residents, messages in rows}

    # -- dead letters ----------------------------------------------------------------------
    def add_dead(self, *, destination: str, subject: str, municipality: str, message_id: str, sequence: int,
                 code: str, reason: str, attempts: int, first_failed: float, headers: dict[str, Any],
                 body: bytes) -> int:
        """Record a dead letter and park its resident behind it (one transaction)."""
        now = time.time()
        with self._db.tx() as cur:
            row = cur.execute(
                "INSERT INTO dead (destination, subject, municipality, message_id, sequence, code, reason, attempts,"
                " first_failed, dead_at, headers, body) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " RETURNING id",
                (destination, subject, municipality, message_id, sequence, code, reason[:500], attempts,
                 first_failed, now, json.dumps(headers, ensure_ascii=False), body),
            ).fetchone()
            cur.execute(_PARK, (destination, subject, message_id, "dead", now))
        return int(row[0]) if row else 0

    def dead(self, dead_id: int) -> DeadLetter | None:
        with self._db.read() as cur:
            row = cur.execute(f"SELECT {_DEAD_COLUMNS} FROM dead WHERE id = %s".encode(),  # noqa: S608
                              (dead_id,)).fetchone()
        return _dead(row) if row else None

    def dead_list(self, where: DeadFilter | None = None, limit: int = 1000) -> list[DeadLetter]:
        clause, args = (where or DeadFilter()).where()
        sql = f"SELECT {_DEAD_COLUMNS} FROM dead WHERE {clause.replace('?', '%s')} ORDER BY id LIMIT %s"  # noqa: S608
        with self._db.read() as cur:
            rows = cur.execute(sql.encode(), (*args, limit)).fetchall()
        return [_dead(row) for row in rows]

    def dead_counts(self) -> dict[str, int]:
        with self._db.read() as cur:
            rows = cur.execute(_DEAD_GROUPS).fetchall()
        counts: dict[str, int] = {}
        for destination, _, n, _ in rows:
            counts[destination] = counts.get(destination, 0) + int(n)
        return counts

    def resolve_dead(self, dead_id: int, state: Literal["replayed", "discarded"], by: str, reason: str) -> bool:
        """Mark a dead letter replayed or discarded; False if it was not dead (any more)."""
        with self._db.tx() as cur:
            cur.execute("UPDATE dead SET state = %s, resolved_by = %s, resolved_reason = %s, resolved_at = %s"
                        " WHERE id = %s AND state = 'dead'", (state, by, reason[:500], time.time(), dead_id))
            return cur.rowcount == 1
