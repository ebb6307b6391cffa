"""The audit store contract, and the SQL both backends share.

    AuditStore                 the contract: append in one transaction, read back, query
    └── SqlAuditStore          the SQL of it; a backend fills in connection and locking
        ├── SqliteAuditStore       (bus.audit.sqlite_store)   one host, the default
        └── PostgresAuditStore     (bus.audit.postgres_store) several workers or hosts

`append` holds the store's head lock for the whole transaction (SQLite BEGIN IMMEDIATE,
PostgreSQL a row lock on `audit_head`): read the head, link the events after it, insert
them, move the head, and sign it when a checkpoint is due. So any number of processes
appending at once still build one linear chain. Records are never updated or deleted: the
tables refuse it with a trigger (someone with the database's owner rights can drop the
trigger, which is what bus.audit.verify is for).

`open_store("var/audit.sqlite")`, `open_store("sqlite:///var/audit.sqlite")`,
`open_store("postgresql://renkei@db/renkei?schema=audit")` (`schema` is ours: the
PostgreSQL schema holding the tables, default `renkei_audit`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

from bus.audit.chain import EVENT_FIELDS, GENESIS, AuditRecord, Head, link_rows, record_row
from bus.audit.events import AuditEvent, EventType
from bus.audit.signing import Checkpoint, CheckpointSigner

__all__ = ["COLUMNS", "AuditStore", "SqlAuditStore"]

#: the column order of audit_records
COLUMNS: tuple[str, ...] = ("seq", "prev_hash", "hash", *EVENT_FIELDS)
_CHECKPOINT_COLUMNS = ("seq", "hash", "signed_at", "key_id", "signature")
# SQL is built from these constants only; values always travel as parameters (hence the noqa: S608)
_INSERT = f"INSERT INTO audit_records ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"  # noqa: S608
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM audit_records WHERE "  # noqa: S608
#: a message's life or a resident's trail, as it happened: by each event's time, then as written.
#: With the bus in several processes each writes its own batches, so seq order is write order:
#: the router's `routed` can be stored before the intake's `received` of the same change.
_AS_HAPPENED = "at, seq"
_INSERT_CHECKPOINT = (f"INSERT INTO audit_checkpoints ({', '.join(_CHECKPOINT_COLUMNS)}) "  # noqa: S608
                      "VALUES (?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING")
_SELECT_CHECKPOINTS = (f"SELECT {', '.join(_CHECKPOINT_COLUMNS)} FROM audit_checkpoints "  # noqa: S608
                       "WHERE seq > ? ORDER BY seq")


class AuditStore(abc.ABC):
    """Where the records and checkpoints of the trail are kept."""

    #: a human name for messages: the file or the server (never a password)
    location: str = ""

    @abc.abstractmethod
    def append(self, events: Sequence[AuditEvent], signer: CheckpointSigner | None = None,
               checkpoint_every: int = 0, *, sign_now: bool = False,
               on_signed: Callable[[Checkpoint], None] | None = None) -> list[AuditRecord]:
        """Append `events` in one transaction, chained after the head; when `signer` is given and
        the head crosses a multiple of `checkpoint_every` (or `sign_now`), sign the new head in the
        same transaction, and after the commit hand the checkpoint to `on_signed`."""

    def try_append(self, events: Sequence[AuditEvent], signer: CheckpointSigner | None = None,
                   checkpoint_every: int = 0, *, sign_now: bool = False,
                   on_signed: Callable[[Checkpoint], None] | None = None) -> list[AuditRecord] | None:
        """`append`, if it can be done at once: None, with nothing written, when it would first
        have to wait (for another process's or thread's write). The audit recorder calls it on its
        event loop and hands the batch to a worker thread when it answers None
        (bus.audit.recorder). A store that cannot tell answers None: every append in the thread."""
        return None

    @abc.abstractmethod
    def add_checkpoint(self, signer: CheckpointSigner) -> Checkpoint | None:
        """Sign the current head now (None when the trail is empty or the head is already signed)."""

    @abc.abstractmethod
    def head(self) -> Head: ...

    @abc.abstractmethod
    def page(self, after: int, limit: int) -> list[AuditRecord]:
        """Up to `limit` records with seq > `after`, in seq order (as stored, even if tampered)."""

    @abc.abstractmethod
    def checkpoints(self, after: int = 0) -> list[Checkpoint]:
        """The checkpoints of records after seq `after` (every one by default), in seq order."""

    @abc.abstractmethod
    def by_message(self, message_id: str) -> list[AuditRecord]:
        """Every record of one message, in the order the events happened (their time, then seq)."""

    @abc.abstractmethod
    def by_subjects(self, subjects: Sequence[str], *, events: Sequence[EventType] = (),
                    municipality: str | None = None, since: str | None = None) -> list[AuditRecord]:
        """Records of these pseudonyms (optionally only these events, one municipality, at ≥ since),
        in the order the events happened (their time, then seq)."""

    @abc.abstractmethod
    def municipalities(self) -> list[str]:
        """The municipality codes that occur in the trail."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def records(self, page_size: int = 5000, after: int = 0) -> Iterator[AuditRecord]:
        """Every record (after seq `after`) in seq order, read a page at a time (memory stays flat)."""
        while True:
            batch = self.page(after, page_size)
            yield from batch
            if len(batch) < page_size:
                return
            after = batch[-1].seq

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Cursor(Protocol):
    def execute(self, query: Any, params: Any = ..., /) -> Any: ...
    def executemany(self, query: Any, params_seq: Any, /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class SqlAuditStore(AuditStore):
    """The SQL of the contract; backends give a locked transaction and a read cursor.

    Statements are written with `?` placeholders; `placeholder` is the backend's.
    """

    placeholder = "?"

    @abc.abstractmethod
    def _locked(self) -> AbstractContextManager[_Cursor]:
        """A transaction that holds the head lock until it commits (or rolls back on error)."""

    @abc.abstractmethod
    def _reading(self) -> AbstractContextManager[_Cursor]:
        """A cursor for reads."""

    def _locked_now(self) -> AbstractContextManager[_Cursor | None]:
        """`_locked` if the head lock can be had without waiting; else (or for a backend that
        cannot tell) a context that yields None and does nothing."""
        return nullcontext(None)

    def _lock_head_sql(self) -> str:
        return "SELECT seq, hash FROM audit_head WHERE id = 1"

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    # -- writes ------------------------------------------------------------------------
    def append(self, events: Sequence[AuditEvent], signer: CheckpointSigner | None = None,
               checkpoint_every: int = 0, *, sign_now: bool = False,
               on_signed: Callable[[Checkpoint], None] | None = None) -> list[AuditRecord]:
        if not events:
            return []
        with self._locked() as cur:
            records, checkpoint = self._append_in(cur, events, signer, checkpoint_every, sign_now)
        if checkpoint is not None and on_signed is not None:
            on_signed(checkpoint)
        return records

    def try_append(self, events: Sequence[AuditEvent], signer: CheckpointSigner | None = None,
                   checkpoint_every: int = 0, *, sign_now: bool = False,
                   on_signed: Callable[[Checkpoint], None] | None = None) -> list[AuditRecord] | None:
        if not events:
            return []
        with self._locked_now() as cur:
            if cur is None:
                return None
            records, checkpoint = self._append_in(cur, events, signer, checkpoint_every, sign_now)
        if checkpoint is not None and on_signed is not None:
            on_signed(checkpoint)
        return records

    def _append_in(self, cur: _Cursor, events: Sequence[AuditEvent], signer: CheckpointSigner | None,
                   checkpoint_every: int, sign_now: bool) -> tuple[list[AuditRecord], Checkpoint | None]:
        """The body of an append, in a transaction that holds the head lock."""
        head = self._read_head(cur)
        records, rows = link_rows(head, events)
        cur.executemany(self._sql(_INSERT), rows)
        new = Head(records[-1].seq, records[-1].hash)
        cur.execute(self._sql("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"), (new.seq, new.hash))
        due = sign_now or (checkpoint_every > 0 and head.seq // checkpoint_every != new.seq // checkpoint_every)
        checkpoint = None
        if signer is not None and due:
            checkpoint = signer.sign(new)
            self._insert_checkpoint(cur, checkpoint)
        return records, checkpoint

    def add_checkpoint(self, signer: CheckpointSigner) -> Checkpoint | None:
        with self._locked() as cur:
            head = self._read_head(cur)
            if head.seq == 0:
                return None
            cur.execute(self._sql("SELECT 1 FROM audit_checkpoints WHERE seq = ?"), (head.seq,))
            if cur.fetchone() is not None:
                return None
            checkpoint = signer.sign(head)
            self._insert_checkpoint(cur, checkpoint)
        return checkpoint

    def _read_head(self, cur: _Cursor) -> Head:
        cur.execute(self._lock_head_sql())
        row = cur.fetchone()
        return Head(int(row[0]), str(row[1])) if row else Head()

    def _insert_checkpoint(self, cur: _Cursor, checkpoint: Checkpoint) -> None:
        cur.execute(self._sql(_INSERT_CHECKPOINT),
                    (checkpoint.seq, checkpoint.hash, checkpoint.signed_at, checkpoint.key_id, checkpoint.signature))

    # -- reads -------------------------------------------------------------------------
    def head(self) -> Head:
        with self._reading() as cur:
            cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1")
            row = cur.fetchone()
        return Head(int(row[0]), str(row[1])) if row else Head(0, GENESIS)

    def page(self, after: int, limit: int) -> list[AuditRecord]:
        return self._select("seq > ? ORDER BY seq LIMIT ?", (after, limit))

    def checkpoints(self, after: int = 0) -> list[Checkpoint]:
        with self._reading() as cur:
            cur.execute(self._sql(_SELECT_CHECKPOINTS), (after,))
            rows = cur.fetchall()
        return [Checkpoint(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    def by_message(self, message_id: str) -> list[AuditRecord]:
        return self._select(f"message_id = ? ORDER BY {_AS_HAPPENED}", (message_id,))

    def by_subjects(self, subjects: Sequence[str], *, events: Sequence[EventType] = (),
                    municipality: str | None = None, since: str | None = None) -> list[AuditRecord]:
        if not subjects:
            return []
        filters, params = subject_filters(events, municipality, since)
        where = [f"subject IN ({', '.join('?' for _ in subjects)})", *filters]
        return self._select(" AND ".join(where) + f" ORDER BY {_AS_HAPPENED}", (*subjects, *params))

    def municipalities(self) -> list[str]:
        with self._reading() as cur:
            cur.execute("SELECT DISTINCT municipality FROM audit_records WHERE municipality IS NOT NULL "
                        "ORDER BY municipality")
            return [str(r[0]) for r in cur.fetchall()]

    def _select(self, condition: str, params: tuple[Any, ...]) -> list[AuditRecord]:
        return self._records(self._sql(_SELECT + condition), params)

    def _records(self, sql: str, params: tuple[Any, ...]) -> list[AuditRecord]:
        """The records a query of whole rows (COLUMNS, in order) finds."""
        with self._reading() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        return [AuditRecord.from_row(dict(zip(COLUMNS, row, strict=True))) for row in rows]


def subject_filters(events: Sequence[EventType], municipality: str | None,
                    since: str | None) -> tuple[list[str], list[Any]]:
    """by_subjects' conditions besides the subjects (SQL on audit_records' columns) and their values."""
    where: list[str] = []
    params: list[Any] = []
    if events:
        where.append(f"event IN ({', '.join('?' for _ in events)})")
        params.extend(str(e) for e in events)
    if municipality:
        where.append("municipality = ?")
        params.append(municipality)
    if since:
        where.append("at >= ?")
        params.append(since)
    return where, params


def _row(record: AuditRecord) -> tuple[Any, ...]:
    """`record` as a row of audit_records, in COLUMNS order (tests write old trails with it)."""
    return record_row(record)
