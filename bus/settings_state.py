"""The `[state]` section of renkei.toml: where the bus keeps its own state.

```toml
[state]
store = "postgresql://renkei@db.example/renkei"   # or env RENKEI_STATE_STORE; omit: SQLite in [bus] state_dir
```

Omitted (the default, one machine): seen and routed ids, counters and rejected messages in
`state.sqlite`, parked residents, held changes and dead letters in `delivery.sqlite`, both in
the state directory (bus.topology.StateDir). A PostgreSQL URL puts all of it in one database
every bus process of every host shares (bus.pg_state, bus.delivery.pg_store): any number of
routers and of deliverers per destination, and a worker's disk holds nothing that matters.
`?schema=NAME` in the URL chooses the schema (default `renkei_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bus.errors import ConfigError
from bus.settings_read import Where, as_text, no_unknown, setting_of

__all__ = ["StateSettings", "read_state"]


@dataclass(frozen=True, slots=True)
class StateSettings:
    store: str | None = None  # None: SQLite files in [bus] state_dir; else a postgresql:// URL


def read_state(raw: dict[str, Any], env: dict[str, str], at: Where) -> StateSettings:
    no_unknown(raw, at("state"), "[state]", ("store",), at)
    store, where = setting_of(raw, env, "store", "RENKEI_STATE_STORE", at, "state", None)
    if store is None:
        return StateSettings()
    text = as_text(store, where, "[state] store").strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in ("postgresql", "postgres"):
        said = f"the scheme {scheme}://" if scheme else "no scheme"  # never the URL: it may hold a password
        raise ConfigError(f"[state] store has {said}: use a postgresql:// URL (several bus processes share it), "
                          "or leave it out for SQLite files in [bus] state_dir", where=where)
    return StateSettings(text)
