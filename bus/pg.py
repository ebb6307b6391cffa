"""One PostgreSQL database shared by every bus process (psycopg 3): the base of the shared state
stores (bus/pg_state.py, bus/delivery/pg_store.py), as bus/sqlite.py is of the local ones.

`PgDatabase(url, schema=..., ddl=..., what=...)` keeps one connection (autocommit, reopened on
the next call when lost) behind a lock, like the SQLite stores' one file handle. Its tables
live in their own schema (the URL parameter `?schema=NAME` chooses another than the store's
default), created on first use under an advisory lock so workers starting together do not
race. `tx()` is one transaction (rolled back if the block raises), `read()` one or more plain
statements; `claim`/`unclaim` take and give back a session advisory lock (held until given
back or until the process's connection ends: a killed process gives its claims back).

`read_once(url, read)` is the snapshot side (`renkei status`): a connection of its own, one
read-only transaction, closed after.

Errors name the store and the server, never the password of the URL.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from bus.errors import RenkeiError, StateStoreError, StoreUnreadable

__all__ = ["PgDatabase", "check_schema_name", "location_of", "read_once", "split_schema", "statements"]

T = TypeVar("T")
Cursor = psycopg.Cursor[tuple[Any, ...]]
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def location_of(url: str, schema: str) -> str:
    """The server and schema of `url`, for messages (no user, no password)."""
    parts = urlsplit(url)
    return f"postgresql://{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path} (schema {schema})"


def split_schema(url: str) -> tuple[str, str | None]:
    """The URL without our `schema` parameter, and that parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def statements(ddl: str) -> list[str]:
    """Split the DDL at top-level semicolons (a function body's `;` are inside $$ … $$)."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for piece in re.split(r"(\$\$|;)", ddl):
        if piece == "$$":
            quoted = not quoted
        if piece == ";" and not quoted:
            out.append("".join(current).strip())
            current = []
        else:
            current.append(piece)
    out.append("".join(current).strip())
    return [statement for statement in out if statement]


def check_schema_name(schema: str, what: str, error: type[RenkeiError] = StateStoreError) -> str:
    """`schema` if it is a plain lower-case name (it is written into SQL), else `error`."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise error(f"{what} schema name {schema!r} must be lower-case letters, digits and _")
    return schema


def _schema_of(url: str, default: str, error: type[RenkeiError] = StateStoreError,
               what: str = "state") -> tuple[str, str]:
    dsn, schema = split_schema(url)
    return dsn, check_schema_name(schema or default, what, error)


class PgDatabase:
    """One connection, one lock; the schema `schema` (or the URL's `?schema=`) made with `ddl`.
    Failures raise `error` (StateStoreError; the audit store's AuditStoreError)."""

    def __init__(self, url: str, *, schema: str, ddl: str, what: str, connect_timeout: float = 10.0,
                 error: type[RenkeiError] = StateStoreError, schema_lock: str = "renkei.state.schema",
                 schema_override: str | None = None) -> None:
        self._error = error
        self._dsn, self.schema = _schema_of(url, schema, error, what)
        if schema_override:
            self.schema = check_schema_name(schema_override, what, error)
        self.what = what
        self.location = location_of(self._dsn, self.schema)
        self._timeout = connect_timeout
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (schema_lock,))
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}".encode())
                    for statement in statements(ddl):
                        conn.execute(statement.encode())
            except psycopg.Error as exc:
                raise error(f"cannot create the {what} tables in {self.location}: {exc}") from None

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=int(self._timeout))
            conn.execute(f"SET search_path TO {self.schema}".encode())
        except psycopg.Error as exc:
            raise self._error(f"cannot connect to the {self.what} {self.location}: {exc}") from None
        self._conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def tx(self) -> Iterator[Cursor]:
        """One transaction; a lost connection is a StateStoreError (reopened on the next call)."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.OperationalError as exc:
                raise self._error(f"cannot write the {self.what} {self.location}: {exc}") from None

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor() as cur:
                    yield cur
            except psycopg.OperationalError as exc:
                raise self._error(f"cannot read the {self.what} {self.location}: {exc}") from None

    def claim(self, space: str, key: str) -> bool:
        """Take the session advisory lock of (`space`, `key`) if no other process holds it."""
        with self.read() as cur:
            row = cur.execute("SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))", (space, key)).fetchone()
        return bool(row and row[0])

    def unclaim(self, space: str, key: str) -> None:
        with self.read() as cur:
            cur.execute("SELECT pg_advisory_unlock(hashtext(%s), hashtext(%s))", (space, key))


def read_once(url: str, schema: str, read: Callable[[Cursor], T], *, what: str,
              connect_timeout: float = 10.0) -> T | None:
    """`read(cursor)` in one read-only transaction on a connection of its own; None when the
    store's tables do not exist yet (no bus has run with it); StoreUnreadable otherwise."""
    dsn, schema = _schema_of(url, schema)
    where = location_of(dsn, schema)
    try:
        with psycopg.connect(dsn, connect_timeout=int(connect_timeout)) as conn:
            conn.read_only = True
            conn.execute(f"SET search_path TO {schema}".encode())
            with conn.cursor() as cur:
                present = cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
                return read(cur) if present else None
    except psycopg.Error as exc:
        raise StoreUnreadable(f"cannot read the {what} {where}: {type(exc).__name__}: {exc}") from None
