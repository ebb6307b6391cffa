"""PostgreSQL sink: one upsert per change into the vendor's staging table, idempotent by key.

In ``renkei.toml``::

    [destinations.kokuho]
    transport = "postgres"
    dsn = "postgresql://renkei@db.kokuho.example.lg.jp/kokuho"   # the password from PGPASSFILE
    table = "renkei_staging.kokuho_changes"
    procedure = "renkei_staging.apply_change"    # optional: the vendor's own step, same transaction
    create_table = false                         # true: create the table when missing

Each delivery is one transaction::

    INSERT INTO <table> (idempotency_key, message_id, kind, …, record, xml)
         VALUES (…) ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key
    SELECT <procedure>(idempotency_key)          -- only when the row is new
    COMMIT

A row inserted is "applied"; a key already there is "duplicate" and nothing else runs, so a
redelivery never has a second effect. With `procedure` the vendor's function (taking the
key, reading the row) runs in the same transaction as the insert: the change is recorded
if and only if the vendor's step committed; when it raises, nothing is kept.

The staging table (``create_table`` makes exactly this)::

    idempotency_key text PRIMARY KEY, message_id text, kind text, schema_version integer,
    municipality text, subject text, sequence bigint, record jsonb, xml text,
    received_at timestamptz DEFAULT now()

Outcomes (mapped in one place, `_mapped`): no connection, a dropped connection, a lock or
statement timeout, a serialization failure or deadlock, too many connections, a server
shutting down → TransientError; anything else the database refuses (a CHECK constraint of
the vendor's, the procedure's RAISE, a missing table) → PermanentError. Errors carry the
SQLSTATE and the constraint or object name, never the database's message text, whose
DETAIL line may repeat the row (personal data).

One connection per sink, used by one delivery at a time (deliveries to one destination
are few per second; a pool is the next step if a vendor needs more).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from adapters.transports.http import record_to_json
from bus.errors import ConfigError, PermanentError, TransientError
from bus.ports import Outbound, Receipt

__all__ = ["PostgresSink", "staging_table_ddl"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
#: SQLSTATE classes and codes that mean "try again later"
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")  # connection, rollback, resources, operator, system
_TRANSIENT_CODES = frozenset({"55P03", "55006", "57014"})  # lock not available, object in use, query cancelled
_COLUMNS = ("idempotency_key", "message_id", "kind", "schema_version", "municipality", "subject", "sequence",
            "record", "xml")


class PostgresSink:
    def __init__(self, dsn: str, table: str, *, procedure: str | None = None, create_table: bool = False,
                 lock_timeout: float = 5.0, statement_timeout: float = 30.0, connect_timeout: float = 10.0,
                 name: str | None = None) -> None:
        if not dsn.startswith(("postgresql://", "postgres://")):
            raise ConfigError("postgres sink: dsn must be a postgresql:// URL (password from PGPASSFILE)")
        for what, value in (("table", table), ("procedure", procedure)):
            if value is not None and not _NAME.match(value):
                raise ConfigError(f"postgres sink: {what} must be a name or schema.name, got {value!r}")
        if min(lock_timeout, statement_timeout, connect_timeout) <= 0:
            raise ConfigError("postgres sink: timeouts must be > 0 seconds")
        self.dsn = dsn
        self.table = table
        self.procedure = procedure
        self.create_table = create_table
        self.lock_timeout = lock_timeout
        self.statement_timeout = statement_timeout
        self.connect_timeout = connect_timeout
        self.name = name or table
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._created = False

    async def deliver(self, message: Outbound) -> Receipt:
        envelope = message.envelope
        destination = envelope.destination or self.name
        async with self._lock:
            try:
                conn = await self._connection()
                async with conn.transaction():
                    cursor = await conn.execute(self._insert(), _row(message))
                    inserted = await cursor.fetchone()
                    if inserted is not None and self.procedure is not None:
                        await conn.execute(sql.SQL("SELECT {}(%s)").format(_identifier(self.procedure)),
                                           (envelope.idempotency_key,))
            except psycopg.Error as exc:
                await self._forget_if_broken()
                raise _mapped(destination, exc) from None
        status: Literal["applied", "duplicate"] = "applied" if inserted is not None else "duplicate"
        reference = f"{self.table}:{envelope.idempotency_key}"
        return Receipt(destination, envelope.idempotency_key, status, reference=reference)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            options = (f"-c lock_timeout={int(self.lock_timeout * 1000)} "
                       f"-c statement_timeout={int(self.statement_timeout * 1000)}")
            self._conn = await psycopg.AsyncConnection.connect(
                self.dsn, connect_timeout=max(1, int(self.connect_timeout)), options=options, autocommit=True)
            if self.create_table and not self._created:
                await self._conn.execute(staging_table_ddl(self.table))
                self._created = True
        return self._conn

    async def _forget_if_broken(self) -> None:
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._conn = None

    def _insert(self) -> sql.Composed:
        return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (idempotency_key) DO NOTHING "
                       "RETURNING idempotency_key").format(
            _identifier(self.table),
            sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS),
            sql.SQL(", ").join(sql.Placeholder(c) for c in _COLUMNS),
        )

    def __repr__(self) -> str:
        return f"PostgresSink({self.name!r}, table={self.table!r})"


def staging_table_ddl(table: str) -> sql.Composed:
    """CREATE TABLE IF NOT EXISTS of the staging table (the layout in the module docstring)."""
    if not _NAME.match(table):
        raise ConfigError(f"postgres sink: table must be a name or schema.name, got {table!r}")
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (idempotency_key text PRIMARY KEY, message_id text NOT NULL, "
        "kind text NOT NULL, schema_version integer NOT NULL, municipality text NOT NULL, subject text NOT NULL, "
        "sequence bigint NOT NULL, record jsonb NOT NULL, xml text NOT NULL, "
        "received_at timestamptz NOT NULL DEFAULT now())"
    ).format(_identifier(table))


def _identifier(name: str) -> sql.Identifier:
    return sql.Identifier(*name.split("."))


def _row(message: Outbound) -> dict[str, Any]:
    env = message.envelope
    return {
        "idempotency_key": env.idempotency_key, "message_id": env.message_id, "kind": env.kind,
        "schema_version": env.schema_version, "municipality": env.municipality, "subject": env.subject,
        "sequence": env.sequence, "record": Jsonb(message.record, dumps=lambda r: record_to_json(r).decode()),
        "xml": message.xml.decode("utf-8"),
    }


def _mapped(destination: str, exc: psycopg.Error) -> TransientError | PermanentError:
    """The one place database errors become delivery errors: SQLSTATE and names only."""
    state = exc.sqlstate or ""
    diag = exc.diag
    names = [n for n in (diag.constraint_name, diag.table_name, diag.column_name) if n]
    where = f" ({', '.join(names)})" if names else ""
    kind = type(exc).__name__
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not state:
        return TransientError(f"{destination}: database unavailable ({kind})")
    if state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_CODES:
        return TransientError(f"{destination}: SQLSTATE {state} {kind}{where}: try again later")
    return PermanentError(f"{destination}: refused by the database: SQLSTATE {state or '-'} {kind}{where}")
