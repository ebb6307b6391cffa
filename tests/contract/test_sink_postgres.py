"""The sink contract (test_sinks.SinkContract) for the PostgreSQL transport, against a real
PostgreSQL: a database per test, the vendor's staging table in it. Unavailable is a table
locked by another transaction (the sink's lock_timeout expires), gone is a database that
stops taking connections and drops the sink's, refused is a CHECK constraint of the vendor's.
Then what only this transport has: the vendor's procedure in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sink_contract_support import outbound
from test_sinks import SinkContract

from adapters.registry import build_sink
from adapters.transports.postgres import PostgresSink, staging_table_ddl
from bus.errors import ConfigError, PermanentError
from bus.ports import Outbound

pytestmark = pytest.mark.postgres
TABLE = "staging.zei_changes"


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A database of its own (dropped after), its DSN."""
    name = f"renkei_sink_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA staging")
        conn.execute(staging_table_ddl(TABLE))
    try:
        yield dsn
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class PostgresHarness:
    def __init__(self, dsn: str, sink: PostgresSink) -> None:
        self.dsn = dsn
        self.sink = sink
        self.database = dsn.rsplit("/", 1)[1]
        self._locker: psycopg.Connection[Any] | None = None

    def message(self) -> Outbound:
        return outbound("zei.jumin", "zei")

    def effects(self) -> int:
        conn = self._locker or psycopg.connect(self.dsn)
        try:
            row = conn.execute("SELECT count(*) FROM staging.zei_changes").fetchone()
        finally:
            if conn is not self._locker:
                conn.close()
        return int(row[0]) if row else 0

    async def make_unavailable(self) -> None:
        self._locker = psycopg.connect(self.dsn)
        self._locker.execute("LOCK TABLE staging.zei_changes IN ACCESS EXCLUSIVE MODE")

    async def make_gone(self) -> None:
        await self.sink.deliver(self.message())  # the sink holds a connection now
        with psycopg.connect(self.dsn.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            name = sql.Identifier(self.database)
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                          (self.database,))

    async def make_refusing(self) -> Outbound:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE staging.zei_changes ADD CONSTRAINT vendor_rule "
                         "CHECK (record->'name'->>'family_name' IS DISTINCT FROM '拒否野')")
        record = outbound("zei.jumin", "zei").record
        return outbound("zei.jumin", "zei", record={**record, "name": {**record["name"], "family_name": "拒否野"}})

    async def restore(self) -> None:
        if self._locker is not None:
            self._locker.rollback()
            self._locker.close()
            self._locker = None


class TestPostgresSink(SinkContract):
    @pytest.fixture
    async def harness(self, database: str) -> AsyncIterator[PostgresHarness]:
        sink = PostgresSink(database, TABLE, lock_timeout=0.3, name="zei")
        harness = PostgresHarness(database, sink)
        try:
            yield harness
        finally:
            await harness.restore()
            await sink.aclose()

    async def test_the_row_holds_the_identifiers_and_the_record(self, harness: PostgresHarness) -> None:
        message = harness.message()
        await harness.sink.deliver(message)
        with psycopg.connect(harness.dsn) as conn:
            row = conn.execute("SELECT message_id, subject, sequence, record, xml FROM staging.zei_changes "
                               "WHERE idempotency_key = %s", (message.envelope.idempotency_key,)).fetchone()
        assert row is not None
        assert (row[0], row[1], row[2]) == (message.envelope.message_id, message.envelope.subject, 1)
        assert row[3]["name"]["family_name"] == message.record["name"]["family_name"]
        assert row[4].encode() == message.xml


async def test_the_vendors_procedure_runs_in_the_same_transaction(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE TABLE staging.residents (key text PRIMARY KEY, family_name text)")
        conn.execute("""CREATE FUNCTION staging.apply_change(k text) RETURNS void AS $$
            BEGIN
              IF (SELECT record->'name'->>'family_name' FROM staging.zei_changes WHERE idempotency_key = k) = '拒否野'
              THEN RAISE EXCEPTION 'vendor refuses';
              END IF;
              INSERT INTO staging.residents
                SELECT idempotency_key, record->'name'->>'family_name'
                FROM staging.zei_changes WHERE idempotency_key = k;
            END $$ LANGUAGE plpgsql""")
    sink = build_sink("postgres", {"dsn": database, "table": TABLE, "procedure": "staging.apply_change",
                                   "destination": "zei"})
    assert isinstance(sink, PostgresSink)
    good = outbound("zei.jumin", "zei")
    record = good.record
    bad = outbound("zei.jumin", "zei", record={**record, "name": {**record["name"], "family_name": "拒否野"}})
    try:
        assert (await sink.deliver(good)).status == "applied"
        assert (await sink.deliver(good)).status == "duplicate"
        with pytest.raises(PermanentError, match="P0001") as refused:
            await sink.deliver(bad)
        assert "拒否野" not in str(refused.value)
    finally:
        await sink.aclose()
    with psycopg.connect(database) as conn:
        staged = conn.execute("SELECT idempotency_key FROM staging.zei_changes").fetchall()
        applied = conn.execute("SELECT key FROM staging.residents").fetchall()
    assert staged == applied == [(good.envelope.idempotency_key,)]  # the refused one left nothing behind


async def test_create_table_makes_the_staging_table_on_first_use(database: str) -> None:
    sink = PostgresSink(database, "staging.fresh", create_table=True)
    try:
        assert (await sink.deliver(outbound("zei.jumin", "zei"))).status == "applied"
    finally:
        await sink.aclose()
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM staging.fresh").fetchone() == (1,)


def test_a_table_name_that_is_not_a_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="table must be a name"):
        PostgresSink("postgresql://db/x", "zei; DROP TABLE x")
    with pytest.raises(ConfigError, match="postgresql://"):
        build_sink("postgres", {"dsn": "mysql://db/x", "table": "t"})
