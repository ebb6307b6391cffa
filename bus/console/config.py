"""The console's settings: the `[console]` table of renkei.toml, RENKEI_CONSOLE_* over it.

```toml
[console]
enabled = false                  # `renkei run` serves the console (off by default)
host = "127.0.0.1"
port = 8090                      # its own port, not the intake's
users_file = "var/console-users.json"   # default: console-users.json in the state_dir
webhook_url = "http://alerts.example/hook"  # alerts also go here (JSON); the log always gets them
secure_cookies = false           # true behind https
down_after = 60                  # seconds a destination keeps failing before it is red
backlog_age = 300                # seconds the oldest waiting change may wait before amber/alert
quiet_period = 30                # seconds a condition must hold before its alert opens or clears
alerts_per_hour = 30             # at most this many notifications an hour; the rest are summed up
verify_every = 600               # seconds between audit chain verifications
checkpoint_overdue = 3600        # seconds without a new signed checkpoint while records are added
sample_every = 10                # seconds between the samples of the overview's chart
history_hours = 6
ready_verify_every = 10          # /readyz verifies the audit chain from its last good checkpoint at most this often
ready_strict_audit = true        # /readyz is 503 when the chain is not proven (no signing key, no witness)
```

The monitoring keys (down_after … ready_strict_audit, webhook_url) apply to /metrics, /healthz and
/readyz wherever a process serves them (bus.console.probes), with the console on or off.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from bus.errors import ConfigError
from bus.settings import Settings

__all__ = ["ConsoleOptions", "console_options"]


@dataclass(frozen=True, slots=True)
class ConsoleOptions:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8090
    users_file: Path | None = None
    webhook_url: str | None = None
    secure_cookies: bool = False
    down_after: float = 60.0
    backlog_age: float = 300.0
    quiet_period: float = 30.0
    alerts_per_hour: int = 30
    verify_every: float = 600.0
    checkpoint_overdue: float = 3600.0
    sample_every: float = 10.0
    history_hours: float = 6.0
    login_failures: int = 5  # failures per account or address within lockout seconds: then locked
    lockout: float = 900.0
    ready_verify_every: float = 10.0  # /readyz verifies the audit chain (incrementally) at most this often
    ready_strict_audit: bool = True  # /readyz: a chain not proven (no key, no witness) is not ready either


def console_options(settings: Settings, env: dict[str, str] | None = None, **overrides: Any) -> ConsoleOptions:
    """The [console] table of `settings`' file, then RENKEI_CONSOLE_<KEY> variables, then `overrides`."""
    env = dict(os.environ if env is None else env)
    where = str(settings.source_file) if settings.source_file else "[console]"
    raw: dict[str, Any] = {}
    if settings.source_file is not None:
        data = tomllib.loads(settings.source_file.read_text(encoding="utf-8"))
        table = data.get("console", {})
        if not isinstance(table, dict):
            raise ConfigError("[console] must be a table", where=where)
        raw.update({k: v for k, v in table.items() if k != "oidc"})  # [console.oidc]: bus.console.oidc
    known = {f.name: f for f in fields(ConsoleOptions)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"unknown [console] setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                          where=where)
    for name in known:
        value = env.get(f"RENKEI_CONSOLE_{name.upper()}")
        if value is not None:
            raw[name] = value
    raw.update({k: v for k, v in overrides.items() if v is not None})
    options = ConsoleOptions()
    changes: dict[str, Any] = {}
    for name, value in raw.items():
        changes[name] = _convert(name, value, type(getattr(options, name)), where)
    if changes.get("users_file") is not None and settings.source_file is not None:
        path = Path(changes["users_file"])
        changes["users_file"] = path if path.is_absolute() else settings.source_file.resolve().parent / path
    options = replace(options, **changes)
    if options.users_file is None:
        options = replace(options, users_file=settings.bus.state_dir / "console-users.json")
    return options


def _convert(name: str, value: Any, kind: type, where: str) -> Any:
    if name in ("users_file", "webhook_url"):
        return str(value) if value not in (None, "") else None
    try:
        if kind is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind is int:
            result: Any = int(value)
        elif kind is float:
            result = float(value)
        else:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"[console] {name} must be a number, got {value!r}", where=where) from None
    if name == "port" and not 0 <= result <= 65535:
        raise ConfigError(f"[console] port must be 0..65535, got {value!r}", where=where)
    if result < 0:
        raise ConfigError(f"[console] {name} must not be negative, got {value!r}", where=where)
    return result
