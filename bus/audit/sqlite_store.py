"""The audit store in one SQLite file (WAL): the default, for one host.

Several processes may append at once: each append is one `BEGIN IMMEDIATE` transaction
(SQLite's write lock, waited for up to `timeout` seconds), so the chain stays linear.
WAL with synchronous=NORMAL survives a killed process; an operating-system crash may lose
the last transactions, never corrupt the chain.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from bus.audit import lookup
from bus.audit.chain import GENESIS, AuditRecord
from bus.audit.events import AuditEvent, EventType
from bus.audit.signing import Checkpoint, CheckpointSigner
from bus.audit.store import _AS_HAPPENED, _SELECT, SqlAuditStore, _Cursor, subject_filters
from bus.errors import AuditStoreError
from bus.sqlite import begin_immediate, busy, enable_wal, without_waiting

__all__ = ["SqliteAuditStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
    seq INTEGER PRIMARY KEY, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, event TEXT NOT NULL,
    message_id TEXT, municipality TEXT, subject TEXT, sequence INTEGER, kind TEXT, source TEXT,
    destination TEXT, route TEXT, projection TEXT, legal_basis TEXT, codes TEXT NOT NULL,
    receipt TEXT, actor TEXT, reason TEXT, attempt INTEGER, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,
    hash TEXT NOT NULL);
INSERT INTO audit_head VALUES (1, 0, '@GENESIS@') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS audit_checkpoints (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL,
    signed_at TEXT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_records_no_update BEFORE UPDATE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_records_no_delete BEFORE DELETE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
""".replace("@GENESIS@", GENESIS) + lookup.SCHEMA


class SqliteAuditStore(SqlAuditStore):
    """Thread-safe: one connection, one lock; every append one short write transaction. A
    message's records and a resident's are found through sorted runs (bus.audit.lookup), built
    in a thread after the appends that complete one (`lookup_run` records each)."""

    def __init__(self, path: Path, timeout: float = 30.0, *, lookup_run: int = lookup.RUN) -> None:
        self.path = path
        self._timeout_ms = int(timeout * 1000)
        self.location = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
            enable_wal(self._db)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")  # several processes may open at once
            self._legacy = lookup.legacy(self._db)
        except (sqlite3.Error, OSError) as exc:
            raise AuditStoreError(f"cannot open the audit store {path}: {exc}") from None
        self._lock = threading.Lock()
        self.lookups = lookup.Lookups(self._connect_builder, run=lookup_run, timeout=timeout)
        self._appended: tuple[int, int] | None = None  # (head before, head after) of the append in hand

    def _connect_builder(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=self._timeout_ms / 1000)
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def close(self) -> None:
        self.lookups.wait(timeout=self._timeout_ms / 1000)
        with self._lock:
            self._db.close()

    @contextmanager
    def _locked(self) -> Iterator[_Cursor]:
        with self._transaction(wait=True) as cur:
            if cur is None:  # cannot be: waiting, it begins or raises
                raise AuditStoreError(f"cannot write the audit store {self.path}")
            yield cur

    def _locked_now(self) -> AbstractContextManager[_Cursor | None]:
        return self._transaction(wait=False)

    @contextmanager
    def _transaction(self, *, wait: bool) -> Iterator[_Cursor | None]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT, rolled back if the block raises).
        `wait=False`: yields None, having done nothing, when this connection is in use by another
        thread or the file's writer lock is held by another connection (process), instead of
        waiting for them (the busy timeout is 0 for that BEGIN)."""
        if not self._lock.acquire(blocking=wait):
            yield None
            return
        try:
            if not self._begin(wait):
                yield None
                return
            try:
                yield self._db.cursor()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            appended, self._appended = self._appended, None
            if appended is not None and not self._legacy:
                self.lookups.appended(*appended)
        finally:
            self._appended = None
            self._lock.release()

    def _append_in(self, cur: _Cursor, events: Sequence[AuditEvent], signer: CheckpointSigner | None,
                   checkpoint_every: int, sign_now: bool) -> tuple[list[AuditRecord], Checkpoint | None]:
        records, checkpoint = super()._append_in(cur, events, signer, checkpoint_every, sign_now)
        self._appended = (records[0].seq - 1, records[-1].seq)
        return records, checkpoint

    def by_message(self, message_id: str) -> list[AuditRecord]:
        if self._legacy:
            return super().by_message(message_id)
        return self._lookup("m", "message_id", [message_id], "", ())

    def by_subjects(self, subjects: Sequence[str], *, events: Sequence[EventType] = (),
                    municipality: str | None = None, since: str | None = None) -> list[AuditRecord]:
        if self._legacy or not subjects:
            return super().by_subjects(subjects, events=events, municipality=municipality, since=since)
        where, params = subject_filters(events, municipality, since)
        return self._lookup("s", "subject", list(subjects), " AND ".join(where), params)

    def _lookup(self, prefix: str, column: str, values: Sequence[str], filters: str,
                params: Sequence[Any]) -> list[AuditRecord]:
        sql = lookup.by_key_sql(_SELECT, column, len(values), filters) + f" ORDER BY {_AS_HAPPENED}"
        return self._records(sql, lookup.parameters(prefix, values, params))

    def _begin(self, wait: bool) -> bool:
        try:
            if wait:
                begin_immediate(self._db, self._timeout_ms / 1000)  # another process's lock: waited in short steps
                return True
            without_waiting(self._db, self._db.execute, "BEGIN IMMEDIATE", timeout_ms=self._timeout_ms)
            return True
        except sqlite3.Error as exc:
            if not wait and busy(exc):
                return False
            raise AuditStoreError(f"cannot write the audit store {self.path}: {exc}") from None

    @contextmanager
    def _reading(self) -> Iterator[_Cursor]:
        with self._lock:
            yield self._db.cursor()
