"""The SQLite trail's lookups in sorted runs (bus.audit.lookup): no random-key index written per
record, every lookup right whether its records are in a run, in a run being built, or after
the last run; a build that died or ran twice changes nothing; an older trail keeps its indexes."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

from bus.audit.events import AuditEvent, EventType
from bus.audit.lookup import LEGACY_INDEXES
from bus.audit.sqlite_store import SqliteAuditStore


def _event(i: int, message_id: str, subject: str | None) -> AuditEvent:
    kind = (EventType.RECEIVED, EventType.ROUTED, EventType.DELIVERED)[i % 3]
    destination = None if kind == EventType.RECEIVED else ("zei", "kokuho")[i % 2]
    return AuditEvent(kind, message_id, "131016", subject, i, "jumin.idou", "jumin", destination,
                      "route" if destination else None, "zei.jumin" if destination else None)


def _events(count: int, messages: list[str], subjects: list[str]) -> list[AuditEvent]:
    # every 7th event has no subject (an auth failure has none), the others share a few
    return [_event(i, messages[i % len(messages)], None if i % 7 == 0 else subjects[i % len(subjects)])
            for i in range(count)]


def _reference(store: SqliteAuditStore) -> list[AuditEvent]:
    return [r.event for r in store.page(0, 1_000_000)]


def _check_lookups(store: SqliteAuditStore, messages: list[str], subjects: list[str]) -> None:
    """Every lookup gives what a scan of the whole trail gives, in the same order."""
    every = store.page(0, 1_000_000)
    as_happened = sorted(every, key=lambda r: (r.event.at, r.seq))
    for message_id in messages:
        assert [r.seq for r in store.by_message(message_id)] == \
            [r.seq for r in as_happened if r.event.message_id == message_id]
    for subject in subjects:
        assert [r.seq for r in store.by_subjects([subject], events=(EventType.DELIVERED,))] == \
            [r.seq for r in as_happened if r.event.subject == subject and r.event.event == EventType.DELIVERED]
    both = set(subjects[:2])
    assert [r.seq for r in store.by_subjects(sorted(both), municipality="131016")] == \
        [r.seq for r in as_happened if r.event.subject in both]


def _ids(n: int) -> list[str]:
    return [secrets.token_hex(16) for _ in range(n)]


def test_a_new_trail_writes_no_index_of_random_keys_and_its_lookups_only_search(tmp_path: Path) -> None:
    """The two indexes of message ids and subjects made every append write index pages at
    random; a new trail has neither, and both lookups search by key (no table scan)."""
    store = SqliteAuditStore(tmp_path / "audit.sqlite", lookup_run=10)
    messages, subjects = _ids(5), _ids(3)
    store.append(_events(25, messages, subjects))
    store.lookups.wait()
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    indexes = [row[0] for row in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_records'"
        " AND name NOT LIKE 'sqlite_autoindex%'")]
    assert indexes == []
    from bus.audit import lookup
    from bus.audit.store import _SELECT
    for column, count in (("message_id", 1), ("subject", 3)):
        sql = lookup.by_key_sql(_SELECT, column, count, "event IN (?)")
        plan = " | ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}",
                                                        lookup.parameters("m", ["x"] * count, ["delivered"])))
        assert "SCAN audit_records" not in plan and "SCAN l" not in plan, plan
        assert "USING PRIMARY KEY" in plan or "USING COVERING INDEX" in plan, plan
    db.close()
    _check_lookups(store, messages, subjects)
    store.close()


def test_the_runs_are_built_in_a_thread_and_every_lookup_stays_whole(tmp_path: Path) -> None:
    store = SqliteAuditStore(tmp_path / "audit.sqlite", lookup_run=50)
    messages, subjects = _ids(30), _ids(9)
    events = _events(237, messages, subjects)
    for start in range(0, len(events), 16):
        store.append(events[start:start + 16])
        _check_lookups(store, messages[:3], subjects[:3])  # while runs are being built
    store.lookups.wait()
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    assert [row[0] for row in db.execute("SELECT upto FROM audit_lookup_runs ORDER BY upto")] == [50, 100, 150, 200]
    # each published run holds each of its records' keys once
    for upto in (50, 100, 150, 200):
        keys = db.execute("SELECT count(message_id) + count(subject) FROM audit_records"
                          " WHERE seq > ? AND seq <= ?", (upto - 50, upto)).fetchone()[0]
        assert db.execute("SELECT count(*) FROM audit_lookup WHERE run = ?", (upto,)).fetchone()[0] == keys
    db.close()
    assert store.lookups.built == 4
    _check_lookups(store, messages, subjects)
    store.close()


def test_a_build_that_died_halfway_is_never_read_and_is_finished_later(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    store = SqliteAuditStore(path, lookup_run=20)
    store.lookups.appended = lambda before, after: None  # nobody builds: as if every builder died
    messages, subjects = _ids(8), _ids(4)
    store.append(_events(45, messages, subjects))
    db = sqlite3.connect(path, isolation_level=None)
    # half of run 20's rows, as a build killed after its first slice leaves them, unpublished
    rows = db.execute("SELECT 'm' || message_id, seq FROM audit_records WHERE seq <= 20 ORDER BY 1, 2").fetchall()
    db.executemany("INSERT INTO audit_lookup VALUES (20, ?, ?)", rows[:10])
    _check_lookups(store, messages, subjects)  # the partial run is not read: the records after the runs are
    assert store.lookups.build_now() == 2
    assert store.lookups.build_now() == 0  # nothing left; building again writes nothing twice
    assert db.execute("SELECT count(*) FROM audit_lookup").fetchone()[0] == \
        db.execute("SELECT count(message_id) + count(subject) FROM audit_records WHERE seq <= 40").fetchone()[0]
    db.close()
    _check_lookups(store, messages, subjects)
    store.close()


def test_two_stores_on_one_trail_build_contiguous_runs_once(tmp_path: Path) -> None:
    """Two processes' stores (here two stores on one file) appending in turn, each building the
    runs its appends complete: the runs follow each other, and no key is written twice."""
    path = tmp_path / "audit.sqlite"
    first, second = SqliteAuditStore(path, lookup_run=7), SqliteAuditStore(path, lookup_run=7)
    messages, subjects = _ids(12), _ids(5)
    events = _events(150, messages, subjects)
    for i, start in enumerate(range(0, len(events), 3)):
        (first if i % 2 else second).append(events[start:start + 3])
    first.lookups.wait()
    second.lookups.wait()
    first.lookups.build_now()  # a crossing whose thread found the lock taken builds at the next one
    db = sqlite3.connect(path)
    assert [row[0] for row in db.execute("SELECT upto FROM audit_lookup_runs ORDER BY upto")] == \
        list(range(7, 148, 7))
    assert db.execute("SELECT count(*) FROM audit_lookup l JOIN audit_lookup_runs r ON l.run = r.upto"
                      ).fetchone()[0] == \
        db.execute("SELECT count(message_id) + count(subject) FROM audit_records WHERE seq <= 147").fetchone()[0]
    db.close()
    for store in (first, second):
        _check_lookups(store, messages, subjects)
    first.close()
    second.close()


def test_a_trail_of_the_format_before_keeps_its_indexes_and_builds_no_runs(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    SqliteAuditStore(path).close()
    db = sqlite3.connect(path)
    db.executescript(LEGACY_INDEXES)
    db.close()
    store = SqliteAuditStore(path, lookup_run=5)
    messages, subjects = _ids(6), _ids(3)
    store.append(_events(33, messages, subjects))
    store.lookups.wait()
    assert store.lookups.built == 0
    _check_lookups(store, messages, subjects)
    store.close()


def test_rows_a_builder_of_another_run_size_left_under_a_runs_number_are_not_read(tmp_path: Path) -> None:
    """A build of runs of 20 killed after its first slice, then builds of runs of 10 (the run
    size changed between versions): run 20 is then (10, 20], and the dead build's rows for
    records 1–10 under that number would have stayed in it for good (a lookup's `seq IN` reads
    each record once either way)."""
    path = tmp_path / "audit.sqlite"
    store = SqliteAuditStore(path, lookup_run=10)
    store.lookups.appended = lambda before, after: None
    messages, subjects = _ids(4), _ids(2)
    store.append(_events(25, messages, subjects))
    db = sqlite3.connect(path, isolation_level=None)
    rows = db.execute("SELECT 'm' || message_id, seq FROM audit_records WHERE seq <= 20 ORDER BY 1, 2").fetchall()
    db.executemany("INSERT INTO audit_lookup VALUES (20, ?, ?)", rows[:12])  # the dead build's first slice
    assert store.lookups.build_now() == 2
    assert [row[0] for row in db.execute("SELECT upto FROM audit_lookup_runs ORDER BY upto")] == [10, 20]
    for upto in (10, 20):
        assert db.execute("SELECT min(seq), max(seq), count(*) FROM audit_lookup WHERE run = ?", (upto,)
                          ).fetchone() == (upto - 9, upto, db.execute(
                              "SELECT count(message_id) + count(subject) FROM audit_records WHERE seq > ? AND seq <= ?",
                              (upto - 10, upto)).fetchone()[0])
    db.close()
    _check_lookups(store, messages, subjects)
    store.close()
