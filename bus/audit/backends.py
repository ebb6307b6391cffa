"""Which audit store a location names: a path or sqlite:/// URL (SQLite), or a postgresql://
URL (PostgreSQL, psycopg imported only then). The one module that knows both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bus.audit.sqlite_store import SqliteAuditStore
from bus.audit.store import AuditStore
from bus.errors import AuditStoreError, ConfigError

__all__ = ["open_store"]


def open_store(location: str | Path, **options: Any) -> AuditStore:
    """The store at `location`: a path or sqlite:/// URL (SQLite), or a postgresql:// URL."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            from bus.audit.postgres_store import PostgresAuditStore  # psycopg only when PostgreSQL is used
        except ImportError as exc:
            if (exc.name or "").split(".")[0] != "psycopg":
                raise
            raise ConfigError("[audit] store is a PostgreSQL URL, but psycopg is not installed: install renkei "
                              "with its postgres extra (pip install 'renkei[postgres]')") from None
        return PostgresAuditStore(text, **options)
    if text.startswith("sqlite:///"):
        text = text.removeprefix("sqlite://")
    elif "://" in text:
        raise AuditStoreError(f"unknown audit store {text.split('://', 1)[0]}://: use a file path, "
                              "sqlite:///path or postgresql://…")
    return SqliteAuditStore(Path(text), **options)
