"""One SQLite file (WAL) shared by the threads of a process and by other processes: the base of
the bus's own stores (bus/state.py, bus/delivery/store.py).

`LocalFile(path, synchronous=...)` opens (and creates) the file; `tx()` is one short
``BEGIN IMMEDIATE`` write transaction (rolled back if the block raises), `read()` holds the
lock for a plain read. `synchronous="NORMAL"` survives a crash of the process (WAL in the
page cache); `"FULL"` also a power cut — for what has been acked from the broker.

`read_only(path, read)` is the snapshot side, for `renkei status` and other readers outside
the bus: the file opened read-only (never created), `read` run in one read transaction (a
reader never blocks the bus's writer, and sees one consistent state).
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from bus.errors import StoreUnreadable

__all__ = ["LocalFile", "begin_immediate", "busy", "enable_wal", "read_only", "tables", "without_waiting"]

T = TypeVar("T")
_TIMEOUT = 30.0  # seconds a LocalFile's transaction waits for another connection's writer lock


def read_only(path: Path, read: Callable[[sqlite3.Connection], T]) -> T | None:
    """`read(db)` in one read transaction of the SQLite file at `path`, opened read-only.
    None when there is no file; StoreUnreadable (naming the file) when it cannot be read."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            db.execute("PRAGMA query_only=1")
            db.execute("BEGIN")
            result = read(db)
            db.execute("COMMIT")
            return result
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StoreUnreadable(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc


def tables(db: sqlite3.Connection) -> set[str]:
    """The tables of a file (a file the bus has just created may have none yet)."""
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class LocalFile:
    def __init__(self, path: Path, *, synchronous: Literal["NORMAL", "FULL"] = "NORMAL", schema: str = "") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=_TIMEOUT)
        enable_wal(self._db)
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        if schema:
            with self.tx() as db:  # several processes may create it at once
                for statement in schema.split(";"):
                    if statement.strip():
                        db.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            begin_immediate(self._db, _TIMEOUT)  # another process's lock: waited in short steps
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db


def enable_wal(db: sqlite3.Connection) -> None:
    """Switch `db` to WAL. Processes opening one file together (a router and a deliverer
    starting at once) can get "database is locked" from the switch even with a busy timeout
    (seen under load in the fault suite); it is tried again for up to 30 s."""
    for attempt in Retrying(retry=retry_if_exception(busy), stop=stop_after_delay(30),
                            wait=wait_random(0.01, 0.1), reraise=True):
        with attempt:
            db.execute("PRAGMA journal_mode=WAL")


def without_waiting(db: sqlite3.Connection, fn: Callable[..., T], *args: Any, timeout_ms: int) -> T:
    """`fn(*args)` with `db`'s busy timeout at 0 (SQLITE_BUSY at once instead of a wait for another
    connection's lock; see `busy`), then back at `timeout_ms`: for the event loop's writes
    (`[bus] inline_writes`: bus.brokers.embedded_worker, bus.audit.sqlite_store), and for
    `begin_immediate`'s own tries."""
    db.execute("PRAGMA busy_timeout=0")
    try:
        return fn(*args)
    finally:
        db.execute(f"PRAGMA busy_timeout={timeout_ms}")


#: seconds between tries of `begin_immediate` (then the last, again and again), each ±50 %
_BEGIN_WAITS = (0.0001, 0.0002, 0.0005, 0.001)


def begin_immediate(db: sqlite3.Connection, timeout: float) -> None:
    """``BEGIN IMMEDIATE`` on `db`, waiting up to `timeout` seconds for another connection's
    writer lock in steps of at most 1 ms. SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20,
    25 … ms between its tries, so a lock held for 1 ms (a bus transaction's usual length) cost a
    waiter 3–8 ms; with three processes on one file that idled each process's writer a sixth of
    the time (bench/README.md, stop 28). Raises as `execute` would (SQLITE_BUSY after `timeout`)."""
    without_waiting(db, _begin_in_steps, db, time.monotonic() + timeout, timeout_ms=int(timeout * 1000))


def _begin_in_steps(db: sqlite3.Connection, deadline: float) -> None:
    for attempt in itertools.count():
        try:
            db.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(_BEGIN_WAITS[min(attempt, len(_BEGIN_WAITS) - 1)] * random.uniform(0.5, 1.5))


def busy(error: BaseException) -> bool:
    """SQLite's "database is locked" (SQLITE_BUSY): another connection holds the lock wanted."""
    return isinstance(error, sqlite3.OperationalError) and (
        getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY or "locked" in str(error))
