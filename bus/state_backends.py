"""Which state and delivery stores `[state] store` names: None (SQLite files in the state
directory: bus.state, bus.delivery.store) or a postgresql:// URL (bus.pg_state,
bus.delivery.pg_store; psycopg imported only then). The one module that knows both backends,
as bus.audit.backends is for the audit store. bus.topology.StateDir calls it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bus.errors import ConfigError

if TYPE_CHECKING:
    from bus.delivery.store import DeliverySnapshot
    from bus.state import StateSnapshot
    from bus.store_protocols import DeliveryStoreProtocol, StateStoreProtocol

__all__ = ["delivery_snapshot", "location", "open_delivery", "open_state", "state_snapshot"]


def _shared(module: str) -> Any:
    """A module of the PostgreSQL backend (it imports psycopg: ConfigError saying what to install)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "psycopg":
            raise
        raise ConfigError("[state] store is a PostgreSQL URL, but psycopg is not installed: install renkei "
                          "with its postgres extra (pip install 'renkei[postgres]')") from None


def location(store: str) -> str:
    """The server and schema of a shared store's URL (no user, no password)."""
    pg = _shared("bus.pg")
    dsn, schema = pg._schema_of(store, _shared("bus.pg_state").SCHEMA)
    return cast(str, pg.location_of(dsn, schema))


def open_state(store: str | None, file: Path) -> StateStoreProtocol:
    if store is None:
        from bus.state import StateStore

        return StateStore(file)
    return cast("StateStoreProtocol", _shared("bus.pg_state").PostgresStateStore(store))


def open_delivery(store: str | None, file: Path) -> DeliveryStoreProtocol:
    if store is None:
        from bus.delivery.store import DeliveryStore

        return DeliveryStore(file)
    return cast("DeliveryStoreProtocol", _shared("bus.delivery.pg_store").PostgresDeliveryStore(store))


def state_snapshot(store: str | None, file: Path) -> StateSnapshot | None:
    if store is None:
        from bus.state import StateStore

        return StateStore.snapshot(file)
    return cast("StateSnapshot | None", _shared("bus.pg_state").PostgresStateStore.snapshot(store))


def delivery_snapshot(store: str | None, file: Path) -> DeliverySnapshot | None:
    if store is None:
        from bus.delivery.store import DeliveryStore

        return DeliveryStore.snapshot(file)
    return cast("DeliverySnapshot | None", _shared("bus.delivery.pg_store").PostgresDeliveryStore.snapshot(store))
