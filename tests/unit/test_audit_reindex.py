"""`renkei audit reindex`: a SQLite trail of the format before (two indexes of random keys)
converted to sorted runs — every complete run built, both indexes dropped, the records and the
chain untouched, every lookup giving what it gave before — and refused for what it cannot do."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

import bus.audit.lookup
from bus.audit import verify
from bus.audit.events import AuditEvent, EventType
from bus.audit.lookup import LEGACY_INDEXES
from bus.audit.sqlite_store import SqliteAuditStore
from bus.cli import main


def _old_trail(path: Path, changes: int) -> list[tuple[str, str]]:
    SqliteAuditStore(path).close()
    db = sqlite3.connect(path)
    db.executescript(LEGACY_INDEXES)
    db.close()
    ids = [(secrets.token_hex(16), secrets.token_hex(16)) for _ in range(changes)]
    store = SqliteAuditStore(path)
    for i, (message_id, subject) in enumerate(ids):
        store.append([AuditEvent(event, message_id, "131016", subject, i, "jumin.idou", "jumin",
                                 None if event == EventType.RECEIVED else "zei")
                      for event in (EventType.RECEIVED, EventType.DELIVERED, EventType.DELIVERED)])
    store.close()
    return ids


def _lookups(path: Path, ids: list[tuple[str, str]]) -> list[list[int]]:
    with SqliteAuditStore(path) as store:
        return [[r.seq for r in store.by_message(m)] + [r.seq for r in store.by_subjects([s], events=(
                EventType.DELIVERED,))] for m, s in ids]


def test_an_old_trail_is_converted_and_finds_what_it_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus.audit.lookup, "RUN", 10)
    path = tmp_path / "audit.sqlite"
    ids = _old_trail(path, 12)  # 36 records: 3 runs of 10, 6 after them
    before = _lookups(path, ids)
    with SqliteAuditStore(path) as store:
        records = [(r.seq, r.hash) for r in store.records()]

    result = CliRunner().invoke(main, ["audit", "reindex", "--store", str(path)])
    assert result.exit_code == 0, result.output
    assert "3 runs of 10 records built, the two indexes dropped; the 6 records after the last run" in result.output
    db = sqlite3.connect(path)
    assert not bus.audit.lookup.legacy(db)
    assert [row[0] for row in db.execute("SELECT upto FROM audit_lookup_runs ORDER BY upto")] == [10, 20, 30]
    db.close()
    assert _lookups(path, ids) == before
    with SqliteAuditStore(path) as store:
        assert not store._legacy
        assert [(r.seq, r.hash) for r in store.records()] == records
        assert verify(store).ok

    again = CliRunner().invoke(main, ["audit", "reindex", "--store", str(path)])
    assert again.exit_code == 0 and "already in sorted runs; nothing to do" in again.output


def test_reindex_refuses_a_missing_file_and_a_postgresql_store(tmp_path: Path) -> None:
    missing = CliRunner().invoke(main, ["audit", "reindex", "--store", str(tmp_path / "none.sqlite")])
    assert missing.exit_code == 2 and "no audit trail at" in missing.output
    postgres = CliRunner().invoke(main, ["audit", "reindex", "--store", "postgresql://renkei@db/renkei"])
    assert postgres.exit_code == 2 and "PostgreSQL trail keeps its indexes" in postgres.output
