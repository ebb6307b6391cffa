"""The audit store in PostgreSQL (psycopg 3): when several workers or hosts share one trail.

Every append is one transaction that first takes the row lock on `audit_head`
(`SELECT … FOR UPDATE`): appenders queue on it, so the chain stays linear however many
processes write. The tables live in their own schema (default `renkei_audit`; the URL
parameter `?schema=NAME` chooses another), created on first use under an advisory lock so
workers starting together do not race. A lost connection is reopened on the next call.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from bus.audit.chain import GENESIS
from bus.audit.store import SqlAuditStore, _Cursor
from bus.errors import AuditStoreError
from bus.pg import PgDatabase

__all__ = ["PostgresAuditStore"]

_DDL = """
CREATE TABLE IF NOT EXISTS audit_records (
    seq BIGINT PRIMARY KEY, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, event TEXT NOT NULL,
    message_id TEXT, municipality TEXT, subject TEXT, sequence BIGINT, kind TEXT, source TEXT,
    destination TEXT, route TEXT, projection TEXT, legal_basis TEXT, codes TEXT NOT NULL,
    receipt TEXT, actor TEXT, reason TEXT, attempt INTEGER, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_records_message ON audit_records (message_id);
CREATE INDEX IF NOT EXISTS audit_records_subject ON audit_records (subject);
CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL,
    hash TEXT NOT NULL);
INSERT INTO audit_head VALUES (1, 0, '@GENESIS@') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS audit_checkpoints (seq BIGINT PRIMARY KEY, hash TEXT NOT NULL,
    signed_at TEXT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL);
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit records are append-only'; END $$;
DROP TRIGGER IF EXISTS audit_records_append_only ON audit_records;
CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
DROP TRIGGER IF EXISTS audit_records_no_truncate ON audit_records;
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
DROP TRIGGER IF EXISTS audit_checkpoints_no_truncate ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
""".replace("@GENESIS@", GENESIS)


class PostgresAuditStore(SqlAuditStore):
    """One connection (reopened when lost), one lock; appends serialise on the head row."""

    placeholder = "%s"

    def __init__(self, url: str, schema: str | None = None, connect_timeout: float = 10.0) -> None:
        self._db = PgDatabase(url, schema="renkei_audit", ddl=_DDL, what="audit store",
                              connect_timeout=connect_timeout, error=AuditStoreError,
                              schema_lock="renkei.audit.schema", schema_override=schema)
        self.schema = self._db.schema
        self.location = self._db.location

    def close(self) -> None:
        self._db.close()

    def _lock_head_sql(self) -> str:
        return "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"

    def _locked(self) -> AbstractContextManager[_Cursor]:
        return self._db.tx()

    def _reading(self) -> AbstractContextManager[_Cursor]:
        return self._db.read()
