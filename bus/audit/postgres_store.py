"""The audit store in PostgreSQL (psycopg 3): when several workers or hosts share one trail.

Every append is one transaction that first takes the row lock on `audit_head`
(`SELECT … FOR UPDATE`): appenders queue on it, so the chain stays linear however many
processes write. The tables live in their own schema (default `renkei_audit`; the URL
parameter `?schema=NAME` chooses another), created on first use under an advisory lock so
workers starting together do not race. A lost connection is reopened on the next call.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from bus.audit.chain import GENESIS
from bus.audit.store import SqlAuditStore, _Cursor
from bus.errors import AuditStoreError

__all__ = ["PostgresAuditStore"]

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
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


def _split_schema(url: str) -> tuple[str, str | None]:
    """The URL without our `schema` parameter, and that parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresAuditStore(SqlAuditStore):
    """One connection (reopened when lost), one lock; appends serialise on the head row."""

    placeholder = "%s"

    def __init__(self, url: str, schema: str | None = None, connect_timeout: float = 10.0) -> None:
        self._url, url_schema = _split_schema(url)
        self.schema = schema or url_schema or "renkei_audit"
        if not _SCHEMA_NAME.fullmatch(self.schema):
            raise AuditStoreError(f"audit schema name {self.schema!r} must be lower-case letters, digits and _")
        parts = urlsplit(self._url)
        self.location = f"postgresql://{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path} " \
                        f"(schema {self.schema})"
        self._timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('renkei.audit.schema'))")
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                    for statement in _statements(_DDL):
                        conn.execute(statement.encode())
            except psycopg.Error as exc:
                raise AuditStoreError(f"cannot create the audit tables in {self.location}: {exc}") from None

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=int(self._timeout))
            conn.execute(f"SET search_path TO {self.schema}")
        except psycopg.Error as exc:
            raise AuditStoreError(f"cannot connect to the audit store {self.location}: {exc}") from None
        self._conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _lock_head_sql(self) -> str:
        return "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"

    @contextmanager
    def _locked(self) -> Iterator[_Cursor]:
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.OperationalError as exc:
                raise AuditStoreError(f"cannot write the audit store {self.location}: {exc}") from None

    @contextmanager
    def _reading(self) -> Iterator[_Cursor]:
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor() as cur:
                    yield cur
            except psycopg.OperationalError as exc:
                raise AuditStoreError(f"cannot read the audit store {self.location}: {exc}") from None


def _statements(ddl: str) -> list[str]:
    """Split the DDL at top-level semicolons (the function body's `;` are inside $$ … $$)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for chunk in re.split(r"(\$\$|;)", ddl):
        if chunk == "$$":
            quoted = not quoted
        if chunk == ";" and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(chunk)
    return [p for p in parts if p]
