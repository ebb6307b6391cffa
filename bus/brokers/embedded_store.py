"""The SQLite side of the embedded broker (bus/brokers/embedded.py): the schema, the
statements (plain functions run by the worker, bus/brokers/embedded_worker.py, inside one
transaction) and owner liveness. See embedded.py for the design."""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import structlog

from bus.brokers.base import BrokerDescription, QueueDescription
from bus.errors import PublishNotConfirmed, StoreUnreadable
from bus.liveness import Process
from bus.sqlite import read_only

__all__ = [
    "PER_MESSAGE", "SCHEMA", "SCHEMA_VERSION", "Process", "ack_statement", "data_version", "describe", "drained",
    "heartbeat",
    "insert", "is_declared", "lease", "listeners", "reclaim", "register",
    "release", "settle_rows", "snapshot", "stats", "unregister",
]

log = structlog.get_logger(__name__)
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    state INTEGER NOT NULL,              -- 0 waiting, 1 ready, 2 leased
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    leased_at REAL,
    visible_at REAL NOT NULL DEFAULT 0   -- not leased before this time (a delayed publish)
);
CREATE INDEX IF NOT EXISTS messages_by_key ON messages (queue, key);
CREATE INDEX IF NOT EXISTS messages_by_state ON messages (queue, state);
CREATE TABLE IF NOT EXISTS owners (  -- one row per connected broker instance
    owner TEXT PRIMARY KEY, pid INTEGER NOT NULL, pid_ns TEXT NOT NULL,
    started TEXT NOT NULL, heartbeat REAL NOT NULL,
    lease_timeout REAL NOT NULL DEFAULT 30  -- how long this owner may stay silent
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumers (
    owner TEXT NOT NULL, consumer TEXT NOT NULL, queue TEXT NOT NULL,
    PRIMARY KEY (owner, consumer)
) WITHOUT ROWID;
"""
SCHEMA_VERSION = 2  # PRAGMA user_version of a file this module wrote (2: visible_at)
WAITING, READY, LEASED = 0, 1, 2


# -- the SQLite side: plain functions run in the worker thread, inside one transaction ----


def is_declared(c: sqlite3.Connection, queue: str) -> bool:
    return c.execute("SELECT 1 FROM queues WHERE name=?", (queue,)).fetchone() is not None


def insert(
    c: sqlite3.Connection, rows: list[tuple[str, str, str, str, bytes]], unknown: set[str], delay: float = 0.0
) -> None:
    """Checks first, then writes: a job raises only before it wrote anything. With `delay`
    the rows are not leased before that many seconds from now."""
    for q in unknown:
        if not is_declared(c, q):
            raise PublishNotConfirmed(f"queue {q!r} was never declared: nothing published (declare it first)")
    visible_at = time.time() + delay if delay > 0 else 0.0
    c.executemany(_INSERT, [(*row, visible_at) for row in rows])


def expedite(c: sqlite3.Connection, queue: str) -> list[str]:
    """Make the delayed rows of `queue` visible now; the headers (JSON) of each, in order."""
    rows = c.execute("UPDATE messages SET visible_at=0 WHERE queue=? AND visible_at>? RETURNING id, headers",
                     (queue, time.time())).fetchall()
    return [headers for _, headers in sorted(rows)]


def lease(c: sqlite3.Connection, queue: str, owner: str, limit: int) -> list[tuple[Any, ...]]:
    rows = c.execute(_LEASE, (owner, time.time(), queue, time.time(), limit)).fetchall()
    return sorted(rows)


def settle_rows(c: sqlite3.Connection, rows: list[tuple[int, int, bool]], owner: str) -> None:
    """Ack (delete, then make each key's next row ready) or requeue leased rows; a row whose
    lease was taken back meanwhile (another owner, another delivery count) is left alone."""
    requeue = [(row, owner, count) for row, count, ok in rows if not ok]
    c.executemany(_REQUEUE, requeue)
    acks = [(row, count) for row, count, ok in rows if ok]
    for start in range(0, len(acks), 400):  # bound the number of SQL variables
        chunk = acks[start:start + 400]
        gone = c.execute(ack_statement(len(chunk)), (*(row for row, _ in chunk), owner,
                                                     *(v for pair in chunk for v in pair))).fetchall()
        c.executemany(_UNBLOCK, set(gone))


def ack_statement(n: int) -> str:
    """Delete `n` leased rows, each by (id, delivery count), returning their (queue, key). The
    `id IN` term lets SQLite find them by rowid: the (id, delivery_count) row values alone made it
    scan the whole table, so an ack cost as much as the backlog of every queue."""
    ids, pairs = ",".join("?" * n), ",".join("(?, ?)" for _ in range(n))  # placeholders only: no value
    return (f"DELETE FROM messages WHERE id IN ({ids}) AND state=2 AND lease_owner=?"  # noqa: S608
            f" AND (id, delivery_count) IN (VALUES {pairs}) RETURNING queue, key")


_INSERT = ("INSERT INTO messages (queue, key, message_id, headers, body, state, visible_at)"
           " SELECT ?1, ?2, ?3, ?4, ?5,"
           " CASE WHEN EXISTS (SELECT 1 FROM messages WHERE queue=?1 AND key=?2) THEN 0 ELSE 1 END, ?6")
_LEASE = ("UPDATE messages SET state=2, lease_owner=?, leased_at=?, delivery_count=delivery_count+1"
          " WHERE id IN (SELECT id FROM messages WHERE queue=? AND state=1 AND visible_at<=? ORDER BY id LIMIT ?)"
          " RETURNING id, key, message_id, headers, body, delivery_count")
_REQUEUE = ("UPDATE messages SET state=1, lease_owner=NULL, leased_at=NULL"
            " WHERE id=? AND state=2 AND lease_owner=? AND delivery_count=?")
_UNBLOCK = "UPDATE messages SET state=1 WHERE id=(SELECT min(id) FROM messages WHERE queue=? AND key=?) AND state=0"
_RELEASE = ("UPDATE messages SET state=1, lease_owner=NULL, leased_at=NULL, delivery_count=delivery_count-1"
            " WHERE id=? AND state=2 AND lease_owner=? AND delivery_count=?")
_DRAINED = "SELECT 1 FROM messages WHERE queue=? LIMIT 1"
#: the statements run per message or per idle poll, by name (a unit test checks that none scans the table)
PER_MESSAGE = {"insert": _INSERT, "lease": _LEASE, "requeue": _REQUEUE, "ack": ack_statement(2),
               "unblock": _UNBLOCK, "release": _RELEASE, "drained": _DRAINED}


def data_version(c: sqlite3.Connection) -> int:
    """Changes whenever another connection has committed to the file since the last read (SQLite's
    `PRAGMA data_version`): the embedded broker's cue that another process published."""
    return int(c.execute("PRAGMA data_version").fetchone()[0])


def release(c: sqlite3.Connection, row: int, owner: str, count: int) -> None:
    c.execute(_RELEASE, (row, owner, count))


def stats(c: sqlite3.Connection, queue: str) -> tuple[int, int, int]:
    counts = dict(c.execute("SELECT state, count(*) FROM messages WHERE queue=? GROUP BY state", (queue,)))
    consumers = c.execute("SELECT count(*) FROM consumers WHERE queue=?", (queue,)).fetchone()[0]
    return counts.get(WAITING, 0) + counts.get(READY, 0), counts.get(LEASED, 0), int(consumers)


def backlog(c: sqlite3.Connection) -> int:
    """Every message of every queue (EmbeddedBroker.backlog)."""
    return int(c.execute("SELECT count(*) FROM messages").fetchone()[0])


def listeners(c: sqlite3.Connection, owner: str) -> dict[str, frozenset[str]]:
    """Queue → the other broker instances (owners) consuming it: whom a publish rings
    (bus/brokers/doorbell.py)."""
    found: dict[str, set[str]] = {}
    for queue, other in c.execute("SELECT queue, owner FROM consumers WHERE owner != ?", (owner,)):
        found.setdefault(queue, set()).add(other)
    return {queue: frozenset(owners) for queue, owners in found.items()}


def drained(c: sqlite3.Connection, queues: Sequence[str]) -> bool:
    """No row in any of `queues`: one index probe per queue, whatever the backlog (`stats`
    counts the queue's whole index range)."""
    return not any(c.execute(_DRAINED, (q,)).fetchone() for q in queues)


def describe(name: str, path: Path, queues: Sequence[str]) -> BrokerDescription:
    """The broker file at `path` as `renkei status` sees it (EmbeddedBroker.describe): its
    `queues` read-only, or why it cannot be read (no file: nothing is created)."""
    try:
        found = snapshot(path, queues)
    except StoreUnreadable as exc:
        problem = f"the broker file: {exc}"
    else:
        if found is not None:
            return BrokerDescription(name, str(path), True, found)
        problem = f"no broker file at {path}: no bus has run with this state directory"
    return BrokerDescription(name, str(path), False, {q: QueueDescription.unknown(q) for q in queues}, problem)


def snapshot(path: Path, queues: Sequence[str]) -> dict[str, QueueDescription] | None:
    """`queues` in the broker file at `path`, read-only in one read transaction (a reader never
    blocks the bus's writer): ready (waiting and ready rows), delayed (not visible yet), in
    flight (leased), consumers (of owners whose heartbeat is fresh and whose process is alive).
    None: no file; StoreUnreadable: a damaged one."""
    return read_only(path, functools.partial(_snapshot, queues=queues))


def _snapshot(db: sqlite3.Connection, queues: Sequence[str]) -> dict[str, QueueDescription]:
    here = Process.current()
    now = time.time()
    declared = {row[0] for row in db.execute("SELECT name FROM queues")}
    columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
    late = "visible_at > ?" if "visible_at" in columns else "0 AND ?"  # files before delays: none
    counts: dict[tuple[str, int, bool], int] = {
        (q, s, bool(d)): n for q, s, d, n in db.execute(
            f"SELECT queue, state, {late}, count(*) FROM messages GROUP BY 1, 2, 3", (now,))  # noqa: S608
    }
    owners = db.execute("SELECT owner, pid, pid_ns, started, heartbeat, lease_timeout FROM owners").fetchall()
    live = {o for o, pid, ns, started, beat, timeout in owners
            if beat >= now - timeout and Process(pid, ns, started).alive(here)}
    consumers: dict[str, int] = {}
    for owner, queue in db.execute("SELECT owner, queue FROM consumers"):
        if owner in live:
            consumers[queue] = consumers.get(queue, 0) + 1
    result = {}
    for q in queues:
        mine = [(state, delayed, n) for (queue, state, delayed), n in counts.items() if queue == q]
        result[q] = QueueDescription(
            q, declared=q in declared,
            ready=sum(n for state, delayed, n in mine if state != LEASED and not delayed),
            delayed=sum(n for state, delayed, n in mine if state != LEASED and delayed),
            in_flight=sum(n for state, _, n in mine if state == LEASED),
            consumers=consumers.get(q, 0),
        )
    return result


def register(c: sqlite3.Connection, owner: str, me: Process, lease_timeout: float) -> None:
    row = (owner, me.pid, me.pid_ns, me.started, time.time(), lease_timeout)
    c.execute("INSERT OR REPLACE INTO owners VALUES (?, ?, ?, ?, ?, ?)", row)


_FREE_OWNED = ("UPDATE messages SET state=1, lease_owner=NULL, leased_at=NULL"
               " WHERE queue=? AND state=2 AND lease_owner=?")
_FREE_ORPHANED = ("UPDATE messages SET state=1, lease_owner=NULL, leased_at=NULL"
                  " WHERE queue=? AND state=2 AND lease_owner NOT IN (SELECT owner FROM owners)")


def _free_leases(c: sqlite3.Connection, owner: str | None) -> int:
    """Rows leased by `owner` (None: by owners no longer registered) back to ready, queue by
    queue so that the (queue, state) index finds them."""
    freed = 0
    for (queue,) in c.execute("SELECT name FROM queues").fetchall():
        if owner is None:
            freed += c.execute(_FREE_ORPHANED, (queue,)).rowcount
        else:
            freed += c.execute(_FREE_OWNED, (queue, owner)).rowcount
    return freed


def unregister(c: sqlite3.Connection, owner: str) -> None:
    _free_leases(c, owner)
    c.execute("DELETE FROM consumers WHERE owner=?", (owner,))
    c.execute("DELETE FROM owners WHERE owner=?", (owner,))


def heartbeat(c: sqlite3.Connection, owner: str, me: Process, lease_timeout: float) -> None:
    if c.execute("UPDATE owners SET heartbeat=? WHERE owner=?", (time.time(), owner)).rowcount == 0:
        log.warning("embedded broker was presumed dead by another process; its leases were reclaimed")
        register(c, owner, me, lease_timeout)
    reclaim(c, owner, me)


def reclaim(c: sqlite3.Connection, owner: str, me: Process) -> None:
    """Give back the leases of dead owners: gone from this pid namespace, or silent for
    longer than their own lease timeout; and leases whose owner row is gone."""
    now = time.time()
    others = c.execute("SELECT * FROM owners WHERE owner != ?", (owner,)).fetchall()
    for other, pid, pid_ns, started, heartbeat, lease_timeout in others:
        if heartbeat < now - lease_timeout or not Process(pid, pid_ns, started).alive(me):
            n = _free_leases(c, other)
            c.execute("DELETE FROM consumers WHERE owner=?", (other,))
            c.execute("DELETE FROM owners WHERE owner=?", (other,))
            log.warning("reclaimed the leases of a dead embedded broker", pid=pid, messages=n)
    _free_leases(c, None)
