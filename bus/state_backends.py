"""Which state and delivery stores `[state] store` names: None (SQLite files in the state
directory: bus.state, bus.delivery.store) or a postgresql:// URL (bus.pg_state,
bus.delivery.pg_store; psycopg imported only then). The one module that knows both backends,
as bus.audit.backends is for the audit store. bus.topology.StateDir calls it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bus.errors import ConfigError

if TYPE_CHECKING:
    from bus.delivery.store import DeliverySnapshot
    from bus.state import StateSnapshot
    from bus.store_protocols import DeliveryStoreProtocol, StateStoreProtocol

__all__ = ["delivery_snapshot", "location", "open_delivery", "open_state", "state_snapshot"]


def _psycopg_missing(exc: ImportError) -> ConfigError:
    if (exc.name or "").split(".")[0] != "psycopg":
        raise exc
    return ConfigError("[state] store is a PostgreSQL URL, but psycopg is not installed: install renkei "
                       "with its postgres extra (pip install 'renkei[postgres]')")


def location(store: str) -> str:
    """The server and schema of a shared store's URL (no user, no password)."""
    try:
        from bus.pg import _schema_of, location_of
        from bus.pg_state import SCHEMA
    except ImportError as exc:
        raise _psycopg_missing(exc) from None
    dsn, schema = _schema_of(store, SCHEMA)
    return location_of(dsn, schema)


def open_state(store: str | None, file: Path) -> StateStoreProtocol:
    if store is None:
        from bus.state import StateStore

        return StateStore(file)
    try:
        from bus.pg_state import PostgresStateStore
    except ImportError as exc:
        raise _psycopg_missing(exc) from None
    return PostgresStateStore(store)


def open_delivery(store: str | None, file: Path) -> DeliveryStoreProtocol:
    if store is None:
        from bus.delivery.store import DeliveryStore

        return DeliveryStore(file)
    try:
        from bus.delivery.pg_store import PostgresDeliveryStore
    except ImportError as exc:
        raise _psycopg_missing(exc) from None
    return PostgresDeliveryStore(store)


def state_snapshot(store: str | None, file: Path) -> StateSnapshot | None:
    if store is None:
        from bus.state import StateStore

        return StateStore.snapshot(file)
    try:
        from bus.pg_state import PostgresStateStore
    except ImportError as exc:
        raise _psycopg_missing(exc) from None
    return PostgresStateStore.snapshot(store)


def delivery_snapshot(store: str | None, file: Path) -> DeliverySnapshot | None:
    if store is None:
        from bus.delivery.store import DeliveryStore

        return DeliveryStore.snapshot(file)
    try:
        from bus.delivery.pg_store import PostgresDeliveryStore
    except ImportError as exc:
        raise _psycopg_missing(exc) from None
    return PostgresDeliveryStore.snapshot(store)
