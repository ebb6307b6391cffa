"""The embedded broker's worker (bus/brokers/embedded.py): it owns the broker file's connection
and runs the statements of bus/brokers/embedded_store.py in group-committed transactions, on a
thread of its own (or, with `[bus] inline_writes`, on the event loop when the file is free)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

from bus.brokers.embedded_store import SCHEMA, SCHEMA_VERSION
from bus.errors import BrokerError, BrokerUnavailable
from bus.groupcommit import Failed, GroupCommit
from bus.sqlite import begin_immediate, busy, enable_wal, without_waiting

__all__ = ["Worker", "mapped"]

T = TypeVar("T")
_BATCH = 1000  # jobs per transaction at most
_TIMEOUT = 10.0  # seconds a thread's BEGIN IMMEDIATE waits for another connection's writer lock


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
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self._conn.execute(statement)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(owners)")}
        if "lease_timeout" not in columns:  # a file from before schema 1
            self._conn.execute("ALTER TABLE owners ADD COLUMN lease_timeout REAL NOT NULL DEFAULT 30")
        if "visible_at" not in {row[1] for row in self._conn.execute("PRAGMA table_info(messages)")}:
            self._conn.execute("ALTER TABLE messages ADD COLUMN visible_at REAL NOT NULL DEFAULT 0")  # before 2
        self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @staticmethod
    def contention(worker: Worker | None) -> dict[str, float]:
        """`worker`'s counters of the file's writer lock (EmbeddedBroker.contention); all 0 for none."""
        if worker is None:
            return {"transactions": 0, "inline_transactions": 0, "lock_held_seconds": 0.0, "lock_waits": 0,
                    "lock_wait_seconds": 0.0}
        return {"transactions": worker.transactions, "inline_transactions": worker.inline_transactions,
                "lock_held_seconds": round(worker.lock_held_seconds, 3),
                "lock_waits": worker.lock_waits, "lock_wait_seconds": round(worker.lock_wait_seconds, 3)}

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
        """`fn(*args)` on the loop: SQLITE_BUSY at once rather than a wait for another process."""
        return without_waiting(self._conn, fn, *args, timeout_ms=int(_TIMEOUT * 1000))

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
            begin_immediate(self._conn, _TIMEOUT)  # waits while another connection (process) writes
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
