"""The audit store contract on SQLite (the default) and on a real PostgreSQL."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import audit_cases as cases
import psycopg
import pytest
from audit_cases import AuditStoreContract, MakeStore, Query, Tamper

from bus.audit import AuditLog, verify
from bus.audit.postgres_store import PostgresAuditStore
from bus.audit.sqlite_store import SqliteAuditStore
from bus.audit.witness import FileWitness, PostgresWitness, Witness


class TestSqliteAuditStore(AuditStoreContract):
    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "audit.sqlite"

    @pytest.fixture
    def make_store(self, path: Path) -> Iterator[MakeStore]:
        stores: list[SqliteAuditStore] = []

        def make() -> SqliteAuditStore:
            stores.append(SqliteAuditStore(path))
            return stores[-1]

        yield make
        for store in stores:
            store.close()

    @pytest.fixture
    def query(self, path: Path) -> Query:
        def run(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            with sqlite3.connect(path, isolation_level=None) as db:
                return db.execute(sql, params).fetchall()

        return run

    @pytest.fixture
    def tamper(self, path: Path) -> Tamper:
        def run(sql: str, params: tuple[Any, ...]) -> None:
            db = sqlite3.connect(path, isolation_level=None)
            db.execute("DROP TRIGGER IF EXISTS audit_records_no_update")
            db.execute("DROP TRIGGER IF EXISTS audit_records_no_delete")
            db.execute("DROP TRIGGER IF EXISTS audit_checkpoints_no_update")
            db.execute("DROP TRIGGER IF EXISTS audit_checkpoints_no_delete")
            db.execute(sql, params)
            db.close()

        return run

    @pytest.fixture
    def store_location(self, path: Path) -> tuple[str, dict[str, Any]]:
        return str(path), {}

    @pytest.fixture
    def witness(self, tmp_path: Path) -> Witness:
        return FileWitness(tmp_path / "elsewhere" / "witness.jsonl")

    def test_a_store_file_copied_back_from_earlier_is_caught_by_the_witness(self, path: Path,
                                                                            witness: Witness) -> None:
        """Last week's copy of the file put back: it verifies on its own, not against the witness."""
        key = cases.signer()
        log = AuditLog(SqliteAuditStore(path), key, checkpoint_every=7, witness=witness)
        log.append(cases.life(1))
        log.close()
        earlier = path.read_bytes()
        log = AuditLog(SqliteAuditStore(path), key, checkpoint_every=7, witness=witness)
        log.append(cases.life(2))
        log.close()
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        path.write_bytes(earlier)
        with SqliteAuditStore(path) as store:
            assert verify(store, cases.verifier_of(key)).ok
            report = verify(store, cases.verifier_of(key), witness=witness)
        assert report.first is not None and "rolled back" in report.first.what


@pytest.mark.postgres

class TestSqliteAuditStoreInRuns(TestSqliteAuditStore):
    """The same contract with the lookups in sorted runs of 3 records (bus.audit.lookup), each
    built as soon as an append completes it: lookups read runs and the records after them."""

    @pytest.fixture
    def make_store(self, path: Path) -> Iterator[MakeStore]:
        stores: list[SqliteAuditStore] = []

        def make() -> SqliteAuditStore:
            store = SqliteAuditStore(path, lookup_run=3)
            lookups = store.lookups
            lookups.appended = lambda before, after: None if before // 3 == after // 3 else lookups.build_now()
            stores.append(store)
            return store

        yield make
        for store in stores:
            store.close()

    def test_the_runs_are_built_and_read(self, make_store: MakeStore, query: Query) -> None:
        """49 records: 16 runs published, one record after them; every life and every resident's
        deliveries come back whole, from the runs and the tail together."""
        store = make_store()
        lives = {history: cases.life(history, f"00012345{history:04d}") for history in range(1, 8)}
        for events in lives.values():
            store.append(events)
        assert query("SELECT count(*), max(upto) FROM audit_lookup_runs", ()) == [(16, 48)]
        for history in range(1, 8):
            address = f"00012345{history:04d}"
            found = store.by_message(cases.envelope(history, address).message_id)
            assert [r.event for r in found] == lives[history]
            delivered = store.by_subjects([cases.subject(address)], events=(cases.EventType.DELIVERED,))
            assert [r.event.destination for r in delivered] == ["zei", "kokuho"]
        every = store.by_subjects([cases.subject(f"00012345{h:04d}") for h in range(1, 8)])
        assert len(every) == 49

    def test_the_runs_hold_no_plaintext_personal_value(self, make_store: MakeStore, query: Query) -> None:
        """The runs' keys are the records' pseudonyms and message ids, nothing of the resident."""
        store = make_store()
        log = AuditLog(store)
        for history in (1, 2, 3):
            log.append(cases.life(history))
        dump = repr(query("SELECT run, key, seq FROM audit_lookup", ()))
        assert cases.ADDRESS_NUMBER not in dump and cases.PERSONAL_NUMBER not in dump
        assert "s" + cases.subject() in dump and "m" + cases.envelope(2).message_id in dump

class TestPostgresAuditStore(AuditStoreContract):
    @pytest.fixture
    def schema(self, postgres_url: str) -> Iterator[str]:
        """A schema of its own per test, dropped afterwards."""
        name = f"audit_test_{uuid.uuid4().hex[:12]}"
        yield name
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")

    @pytest.fixture
    def make_store(self, postgres_url: str, schema: str) -> Iterator[MakeStore]:
        stores: list[PostgresAuditStore] = []

        def make() -> PostgresAuditStore:
            stores.append(PostgresAuditStore(postgres_url, schema=schema))
            return stores[-1]

        yield make
        for store in stores:
            store.close()

    @pytest.fixture
    def query(self, postgres_url: str, schema: str) -> Query:
        def run(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute(f"SET search_path TO {schema}")
                cur = conn.execute(sql.replace("?", "%s"), params)
                return cur.fetchall() if cur.description else []

        return run

    @pytest.fixture
    def tamper(self, postgres_url: str, schema: str) -> Tamper:
        def run(sql: str, params: tuple[Any, ...]) -> None:
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute(f"SET search_path TO {schema}")
                conn.execute("SET session_replication_role = replica")  # the owner's way around triggers
                conn.execute(sql.replace("?", "%s"), params)

        return run

    @pytest.fixture
    def store_location(self, postgres_url: str, schema: str) -> tuple[str, dict[str, Any]]:
        return postgres_url, {"schema": schema}

    @pytest.fixture
    def witness(self, postgres_url: str, schema: str) -> Iterator[Witness]:
        witness = PostgresWitness(postgres_url, schema=f"{schema}_w")
        yield witness
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema}_w CASCADE")
