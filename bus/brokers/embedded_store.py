"""The SQLite side of the embedded broker (bus/brokers/embedded.py): the schema, the
statements (plain functions run by the worker thread inside one transaction), owner
liveness, and the worker thread itself. See embedded.py for the design."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import structlog

from bus.brokers.base import QueueDescription
from bus.errors import BrokerError, BrokerUnavailable, PublishNotConfirmed
from bus.groupcommit import Failed, GroupCommit
from bus.liveness import Process
from bus.sqlite import busy, enable_wal, read_only

__all__ = [
    "PER_MESSAGE", "Process", "Worker", "ack_statement", "data_version", "drained", "heartbeat",
    "insert", "is_declared", "lease", "mapped", "reclaim", "register",
    "release", "settle_rows", "snapshot", "stats", "unregister",
]

log = structlog.get_logger(__name__)
T = TypeVar("T")

_SCHEMA = """
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
_BATCH = 1000  # jobs per transaction at most
_TIMEOUT = 10.0  # seconds a thread's BEGIN IMMEDIATE waits for another connection's writer lock


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


def drained(c: sqlite3.Connection, queues: Sequence[str]) -> bool:
    """No row in any of `queues`: one index probe per queue, whatever the backlog (`stats`
    counts the queue's whole index range)."""
    return not any(c.execute(_DRAINED, (q,)).fetchone() for q in queues)


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


# -- the worker ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    durable: bool


class Worker:
    """Owns the connection, used by one thread of its own; runs jobs through one GroupCommit
    (bus.groupcommit): the jobs that arrive while a batch runs share the next transaction.
    Rule for jobs: raise a BrokerError only before writing anything. Create it in a thread
    (it opens the file); use it from one event loop."""

    def __init__(self, path: Path, sync_publishes: bool = True, inline: bool = False) -> None:
        self._sync_publishes = sync_publishes  # False: publishes commit with NORMAL too (EmbeddedBroker.sync)
        #: run a batch on the event loop when the file's writer lock is free (`[bus] inline_writes`):
        #: the thread only for what would wait for another process (see `_commit`)
        self._inline = inline
        self._on_thread = 0  # calls handed to the thread and not yet back: the connection is the thread's
        self.inline_transactions = 0  # of `transactions`, how many ran on the event loop
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_TIMEOUT)
        enable_wal(self._conn)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA cache_size=-32000")  # KiB: the hot pages of big queues
        self._conn.execute("PRAGMA journal_size_limit=67108864")  # a burst's WAL shrinks back
        self._durable = False
        #: how long BEGIN IMMEDIATE waited for the file's writer lock (held by another process's
        #: connection; this worker's own transactions never overlap): waits over 1 ms and their total
        self.lock_waits, self.lock_wait_seconds, self.transactions = 0, 0.0, 0
        self.lock_held_seconds = 0.0  # from BEGIN IMMEDIATE taken to COMMIT done: others wait that long
        with self._transaction():  # executescript would commit on its own
            self._create_schema()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"renkei-embedded:{path.name}")
        self._jobs: GroupCommit[_Job] = GroupCommit(self._commit, max_batch=_BATCH)

    def _create_schema(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise BrokerUnavailable(f"the broker file has schema {version}, newer than this renkei's "
                                    f"{SCHEMA_VERSION}: upgrade renkei or use another file")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._conn.execute(statement)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(owners)")}
        if "lease_timeout" not in columns:  # a file from before schema 1
            self._conn.execute("ALTER TABLE owners ADD COLUMN lease_timeout REAL NOT NULL DEFAULT 30")
        if "visible_at" not in {row[1] for row in self._conn.execute("PRAGMA table_info(messages)")}:
            self._conn.execute("ALTER TABLE messages ADD COLUMN visible_at REAL NOT NULL DEFAULT 0")  # before 2
        self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    async def run(self, fn: Callable[[sqlite3.Connection], T], durable: bool) -> T:
        result: T = await self._jobs.submit(_Job(fn, durable))
        return result

    async def peek(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` outside any transaction (no write lock taken): a cheap read such as `PRAGMA
        data_version`. On the loop when the connection is free and the read needs no wait, else on
        the worker's thread; it never overlaps a batch."""
        if self._inline and not self._on_thread:
            try:
                return self._now(fn, self._conn)
            except sqlite3.OperationalError as exc:
                if not busy(exc):
                    raise
        return await self._thread_call(fn, self._conn)

    async def aclose(self) -> None:
        await self._jobs.drain()
        await self._jobs.aclose()
        await self._thread_call(self._conn.close)
        self._thread.shutdown(wait=True)

    async def _commit(self, batch: list[_Job]) -> list[Any]:
        """One transaction for the batch: on the event loop when nothing else holds the file's
        writer lock (the common case: no thread hand-off, ~0.1 ms of CPU saved a batch), else on
        the worker's thread, which waits for the lock as long as the busy timeout allows."""
        if self._inline and not self._on_thread:
            outcomes = self._outcomes(batch, now=True)
            if outcomes is not None:
                return outcomes
        return await self._thread_call(self._outcomes, batch)

    async def _thread_call(self, fn: Callable[..., T], *args: Any) -> T:
        self._on_thread += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        finally:
            self._on_thread -= 1

    def _now(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` with a busy timeout of 0: SQLITE_BUSY at once rather than a wait on the loop."""
        self._conn.execute("PRAGMA busy_timeout=0")
        try:
            return fn(*args)
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={int(_TIMEOUT * 1000)}")

    @overload
    def _outcomes(self, batch: list[_Job]) -> list[Any]: ...
    @overload
    def _outcomes(self, batch: list[_Job], *, now: bool) -> list[Any] | None: ...

    def _outcomes(self, batch: list[_Job], *, now: bool = False) -> list[Any] | None:
        """Run the jobs in one transaction. A job raising a BrokerError has (by rule) written
        nothing, so the others go on; a job failing otherwise is dropped and the batch rerun
        without it; a failed BEGIN/COMMIT fails them all. `now`: None, with nothing done, when
        the writer lock is another connection's (nothing waits for it)."""
        results: list[Any] = []
        try:
            with self._transaction(any(job.durable for job in batch), now=now):
                for index, job in enumerate(batch):
                    try:
                        results.append(job.fn(self._conn))
                    except BrokerError as exc:
                        results.append(Failed(exc))
                    except Exception as exc:
                        raise _JobFailed(index, exc) from exc
        except _Busy:
            return None
        except _JobFailed as failed:
            rest = self._outcomes(batch[:failed.index] + batch[failed.index + 1:], now=now)
            if rest is None:
                return None
            return [*rest[:failed.index], Failed(mapped(failed.error)), *rest[failed.index:]]
        except Exception as exc:
            return [Failed(mapped(exc))] * len(batch)
        return results

    @contextmanager
    def _transaction(self, durable: bool = False, *, now: bool = False) -> Iterator[None]:
        durable = durable and self._sync_publishes
        if durable != self._durable:
            self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable = durable
        started = time.perf_counter()
        if now:
            try:
                self._now(self._conn.execute, "BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if busy(exc):
                    raise _Busy from None
                raise
            self.inline_transactions += 1
        else:
            self._conn.execute("BEGIN IMMEDIATE")  # waits (busy timeout) while another connection writes
        waited = time.perf_counter() - started
        self.transactions += 1
        if waited > 0.001:
            self.lock_waits += 1
            self.lock_wait_seconds += waited
        try:
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        finally:
            self.lock_held_seconds += time.perf_counter() - started - waited


class _Busy(Exception):
    """BEGIN IMMEDIATE on the loop found the writer lock taken: the batch goes to the thread."""


class _JobFailed(Exception):
    def __init__(self, index: int, error: Exception) -> None:
        self.index, self.error = index, error


def mapped(exc: Exception) -> Exception:
    """The one place SQLite errors become broker errors."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return BrokerUnavailable(f"embedded broker store: {type(exc).__name__}: {exc}")
    return exc
