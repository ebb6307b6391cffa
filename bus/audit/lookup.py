"""The SQLite trail's lookups (a message's records, a resident's deliveries) in sorted runs.

A message id and a subject are keyed HMACs: random. Kept in two ordinary indexes on
`audit_records`, every record put two keys at random places in B-trees that grow with the
trail, so each commit wrote about two fresh index pages a record to the WAL (and the
checkpoint copied them again): 20 µs a record without the indexes, 44–68 µs with them at 50,000
to 200,000 records, growing with the trail (bench/README.md, issue 10 stop 29).

Here a record costs nothing at append time. Every `RUN` records (seq (k·RUN, (k+1)·RUN]) are
indexed together, after they are written: their keys (`m` + message id, `s` + subject) read
sorted in one read transaction of a second connection, a slice of a few thousand at a time, and
appended to `audit_lookup` under the run's number (each slice a short write transaction: the
B-tree grows at its end only); the run counts once `audit_lookup_runs` names it, in the slice that completes it. A
lookup seeks each published run and scans the records after the last one (at most about two
runs' worth: the one being built and the one being written).

Who builds: the store whose append crossed a run's end, in a thread of its own with its own
connection (an append never waits for a build). A build that dies (kill -9) leaves rows of an
unpublished run, which no lookup reads; the next crossing builds every run not yet published,
and rewrites those rows (INSERT OR IGNORE). Two stores building the same run write the same
rows; the run is published once.

A trail written before this (with the indexes `audit_records_message`, `audit_records_subject`)
keeps its indexes and its lookups, and builds no runs, until `renkei audit reindex` converts it
(`convert`: every complete run built, then both indexes dropped; the bus stopped meanwhile).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from bus.logs import get_logger
from bus.sqlite import begin_immediate

__all__ = ["LEGACY_INDEXES", "RUN", "SCHEMA", "Lookups", "convert", "legacy"]

log = get_logger(__name__)

#: records per run: a lookup scans at most about two of them and seeks one key per run before
RUN = 32_768
_SLICE = 8_192  # rows per write transaction of a build (~10 ms of the writer lock)

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_lookup (run INTEGER NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (run, key, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_lookup_runs (upto INTEGER PRIMARY KEY);
"""
_LEGACY_INDEXES = ("audit_records_message", "audit_records_subject")
#: the two indexes of a trail written before December 2026 (what `legacy` recognises; the tests and
#: bench.audit_trail make such a trail with them)
LEGACY_INDEXES = """
CREATE INDEX IF NOT EXISTS audit_records_message ON audit_records (message_id);
CREATE INDEX IF NOT EXISTS audit_records_subject ON audit_records (subject);
"""
_WATERMARK = "(SELECT coalesce(max(upto), 0) FROM audit_lookup_runs)"
_KEYS = ("SELECT 'm' || message_id, seq FROM audit_records WHERE seq > ? AND seq <= ? AND message_id IS NOT NULL"
         " UNION ALL "
         "SELECT 's' || subject, seq FROM audit_records WHERE seq > ? AND seq <= ? AND subject IS NOT NULL"
         " ORDER BY 1, 2")


def legacy(db: sqlite3.Connection) -> bool:
    """A trail of the format before the runs: its lookups are its two indexes."""
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    return all(name in names for name in _LEGACY_INDEXES)


def convert(db: sqlite3.Connection, *, run: int | None = None, timeout: float = 30.0,
            on_run: Callable[[int], None] | None = None) -> int:
    """A trail of the format before as a new one: every complete run built, then the two indexes
    dropped (in one transaction; the records after the last run are found by the scan). The
    runs published; 0 for a trail already converted. Stop the bus meanwhile: its stores decided
    at open how to look up."""
    if not legacy(db):
        return 0
    path = db.execute("PRAGMA database_list").fetchone()[2]
    built = Lookups(lambda: sqlite3.connect(path, timeout=timeout), run=run or RUN, timeout=timeout).build(db, on_run)
    begin_immediate(db, timeout)
    for name in _LEGACY_INDEXES:
        db.execute(f"DROP INDEX IF EXISTS {name}")
    db.execute("COMMIT")
    return built


def by_key_sql(select: str, key_column: str, count: int, filters: str) -> str:
    """The query of the records whose `key_column` is one of `count` values (the keys, with
    their one-letter prefix, as the first `count` parameters; the plain values as the next
    `count`), with `filters` (SQL on audit_records' columns, its parameters last): the published
    runs' rows, then the records after the last run."""
    keys = ", ".join("?" for _ in range(count))
    extra = f" AND {filters}" if filters else ""
    return (f"{select} seq IN (SELECT l.seq FROM audit_lookup_runs r CROSS JOIN audit_lookup l"  # noqa: S608
            f" ON l.run = r.upto AND l.key IN ({keys})){extra}"
            f" UNION ALL {select} seq > {_WATERMARK} AND {key_column} IN ({keys}){extra}")


def parameters(prefix: str, values: Sequence[str], filters: Sequence[Any]) -> tuple[Any, ...]:
    """The parameters of `by_key_sql`'s query, in its order."""
    return (*(prefix + v for v in values), *filters, *values, *filters)


class Lookups:
    """Builds a SQLite trail's runs in the background (see the module docstring)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, run: int = RUN, slice_rows: int = _SLICE,
                 timeout: float = 30.0) -> None:
        self._connect = connect
        self.run = run
        self._slice = slice_rows
        self._timeout = timeout
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._running = False  # a thread is building (or about to)
        self._again = False
        self.built = 0  # runs this store published (tests, benchmarks)

    def appended(self, before: int, after: int) -> None:
        """An append moved the head from `before` to `after`: build if it crossed a run's end."""
        if before // self.run == after // self.run:
            return
        with self._guard:
            if self._running:
                self._again = True  # the thread looks again before it stops
                return
            self._running = True
            self._thread = threading.Thread(target=self._build_all, name="renkei-audit-lookups", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the build running now (if any) has finished."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def build_now(self) -> int:
        """Build every complete run not yet published, in this thread; the runs published."""
        db = self._connect()
        try:
            return self.build(db)
        finally:
            db.close()

    def _build_all(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            db = self._connect()
            while True:
                self.build(db)
                with self._guard:
                    if not self._again:
                        self._running = False
                        return
                    self._again = False
        except sqlite3.Error as exc:  # the next crossing builds what is missing; lookups stay right
            log.warning("audit lookups not built", error=type(exc).__name__)
        finally:
            with self._guard:
                self._running = False
            if db is not None:
                db.close()

    def build(self, db: sqlite3.Connection, on_run: Callable[[int], None] | None = None) -> int:
        """Every complete run not yet published, written through `db`; the runs published.
        `on_run(records)` after each, with the records it indexed. A run's keys come sorted from a
        second connection (one read transaction), a slice at a time: a build holds one slice in
        memory, not the run (32,768 records' keys held at once cost each building process ~15 MB
        of heap it kept)."""
        published = 0
        reader = self._connect()
        try:
            while True:
                watermark, head = db.execute(
                    f"SELECT {_WATERMARK}, (SELECT seq FROM audit_head WHERE id = 1)").fetchone()  # noqa: S608
                upto = watermark + self.run
                if head < upto:
                    return published
                keys = reader.execute(_KEYS, (watermark, upto, watermark, upto))
                first = True
                while True:
                    rows = keys.fetchmany(self._slice)
                    last = len(rows) < self._slice
                    self._write_slice(db, rows, upto, watermark, first=first, last=last)
                    first = False
                    if last:
                        break
                keys.close()
                published += 1
                self.built += 1
                if on_run is not None:
                    on_run(self.run)
        finally:
            reader.close()

    def _write_slice(self, db: sqlite3.Connection, rows: list[tuple[str, int]], upto: int, watermark: int, *,
                     first: bool, last: bool) -> None:
        begin_immediate(db, self._timeout)
        try:
            if first:  # rows left under this run's number by a builder of another run size
                db.execute("DELETE FROM audit_lookup WHERE run = ? AND seq <= ?", (upto, watermark))
            db.executemany("INSERT OR IGNORE INTO audit_lookup VALUES (?, ?, ?)", [(upto, k, q) for k, q in rows])
            if last:  # contiguous runs only: the one before must be published
                db.execute(f"INSERT OR IGNORE INTO audit_lookup_runs SELECT ? WHERE {_WATERMARK} = ?",
                           (upto, watermark))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
