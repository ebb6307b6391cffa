"""One SQLite file (WAL) shared by the threads of a process and by other processes: the base of
the bus's own stores (bus/state.py, bus/delivery/store.py).

`LocalFile(path, synchronous=...)` opens (and creates) the file; `tx()` is one short
``BEGIN IMMEDIATE`` write transaction (rolled back if the block raises), `read()` holds the
lock for a plain read. `synchronous="NORMAL"` survives a crash of the process (WAL in the
page cache); `"FULL"` also a power cut — for what has been acked from the broker.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

__all__ = ["LocalFile", "enable_wal"]


class LocalFile:
    def __init__(self, path: Path, *, synchronous: Literal["NORMAL", "FULL"] = "NORMAL", schema: str = "") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
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
            self._db.execute("BEGIN IMMEDIATE")
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
    for attempt in Retrying(retry=retry_if_exception(_locked), stop=stop_after_delay(30),
                            wait=wait_random(0.01, 0.1), reraise=True):
        with attempt:
            db.execute("PRAGMA journal_mode=WAL")


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)
