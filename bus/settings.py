"""Settings: frozen objects built from `renkei.toml` plus `RENKEI_*` environment overrides.

Passed in explicitly; there is no module-level global. Secrets (the pseudonym key, broker
passwords) come from the environment or from files, never from the repository.

```toml
[bus]
broker_url = "amqp://renkei:secret@127.0.0.1:5672/%2F"   # omit for the embedded broker
state_dir = "var"                # embedded broker file, state and rejected store
pseudonym_key_file = "/etc/renkei/pseudonym.key"          # or env RENKEI_PSEUDONYM_KEY
max_message_bytes = 1048576
municipalities = ["131016"]      # the municipalities this bus serves (empty: any)

[intake]
http_host = "127.0.0.1"
http_port = 8080
inbox = "var/inbox"              # optional directory source

[logging]
format = "console"               # or "json"
level = "info"

[destinations.zei]
transport = "http"               # http | file | an entry point in renkei.adapters
url = "http://127.0.0.1:9101/messages"
concurrency = 8
```
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.errors import ConfigError

__all__ = ["BusSettings", "DestinationSettings", "IntakeSettings", "LoggingSettings", "Settings"]

_DEV_KEY_NOTICE = "renkei-development-key-not-for-production"


@dataclass(frozen=True, slots=True)
class BusSettings:
    broker_url: str | None = None
    state_dir: Path = Path("var")
    pseudonym_key: bytes = field(default=_DEV_KEY_NOTICE.encode(), repr=False)
    max_message_bytes: int = 1024 * 1024
    municipalities: tuple[str, ...] = ()
    routes_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    inbox: Path | None = None


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    format: str = "console"
    level: str = "info"


@dataclass(frozen=True, slots=True)
class DestinationSettings:
    name: str
    transport: str
    concurrency: int = 8
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Settings:
    bus: BusSettings = field(default_factory=BusSettings)
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    destinations: dict[str, DestinationSettings] = field(default_factory=dict)
    source_file: Path | None = None

    @property
    def uses_development_key(self) -> bool:
        return self.bus.pseudonym_key == _DEV_KEY_NOTICE.encode()

    @classmethod
    def load(cls, path: Path | None = None, env: dict[str, str] | None = None) -> Settings:
        """Read `path` (if given) and apply RENKEI_* overrides from `env` (default os.environ)."""
        env = dict(os.environ if env is None else env)
        data: dict[str, Any] = {}
        if path is not None:
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ConfigError("config file not found", where=str(path)) from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"not valid TOML: {exc}", where=str(path)) from None
        base = path.parent if path is not None else Path.cwd()
        where = str(path) if path else "environment"
        _no_unknown(data, where, "the top level", ("bus", "intake", "logging", "destinations"))
        return cls(
            bus=_bus(data.get("bus", {}), env, base, where),
            intake=_intake(data.get("intake", {}), env, base, where),
            logging=_logging(data.get("logging", {}), env, where),
            destinations=_destinations(data.get("destinations", {}), where),
            source_file=path,
        )


def _no_unknown(data: dict[str, Any], where: str, section: str, known: tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {section}: {', '.join(unknown)} (known: {', '.join(known)})", where=where
        )


def _bus(raw: dict[str, Any], env: dict[str, str], base: Path, where: str) -> BusSettings:
    known = ("broker_url", "state_dir", "pseudonym_key_file", "max_message_bytes", "municipalities", "routes_dir")
    _no_unknown(raw, where, "[bus]", known)
    key = _pseudonym_key(raw, env, base, where)
    routes_dir = env.get("RENKEI_ROUTES_DIR") or raw.get("routes_dir")
    return BusSettings(
        broker_url=env.get("RENKEI_BROKER_URL") or raw.get("broker_url") or None,
        state_dir=base / Path(env.get("RENKEI_STATE_DIR") or raw.get("state_dir", "var")),
        pseudonym_key=key,
        max_message_bytes=int(env.get("RENKEI_MAX_MESSAGE_BYTES") or raw.get("max_message_bytes", 1024 * 1024)),
        municipalities=tuple(str(m) for m in raw.get("municipalities", ())),
        routes_dir=base / routes_dir if routes_dir else None,
    )


def _pseudonym_key(raw: dict[str, Any], env: dict[str, str], base: Path, where: str) -> bytes:
    if env.get("RENKEI_PSEUDONYM_KEY"):
        return env["RENKEI_PSEUDONYM_KEY"].encode()
    key_file = env.get("RENKEI_PSEUDONYM_KEY_FILE") or raw.get("pseudonym_key_file")
    if not key_file:
        return _DEV_KEY_NOTICE.encode()
    try:
        key = (base / key_file).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read pseudonym_key_file ({exc.strerror})", where=where) from None
    if len(key) < 16:
        raise ConfigError("the pseudonym key must be at least 16 bytes", where=where)
    return key


def _intake(raw: dict[str, Any], env: dict[str, str], base: Path, where: str) -> IntakeSettings:
    _no_unknown(raw, where, "[intake]", ("http_host", "http_port", "inbox"))
    inbox = raw.get("inbox")
    return IntakeSettings(
        http_host=env.get("RENKEI_HTTP_HOST") or raw.get("http_host", "127.0.0.1"),
        http_port=int(env.get("RENKEI_HTTP_PORT") or raw.get("http_port", 8080)),
        inbox=base / inbox if inbox else None,
    )


def _logging(raw: dict[str, Any], env: dict[str, str], where: str) -> LoggingSettings:
    _no_unknown(raw, where, "[logging]", ("format", "level"))
    fmt = env.get("RENKEI_LOG_FORMAT") or raw.get("format", "console")
    if fmt not in ("console", "json"):
        raise ConfigError(f"[logging] format must be 'console' or 'json', got {fmt!r}", where=where)
    return LoggingSettings(format=fmt, level=(env.get("RENKEI_LOG_LEVEL") or raw.get("level", "info")).lower())


def _destinations(raw: dict[str, Any], where: str) -> dict[str, DestinationSettings]:
    result = {}
    for name, options in raw.items():
        if not isinstance(options, dict) or "transport" not in options:
            raise ConfigError(f"[destinations.{name}] needs a 'transport'", where=where)
        opts = dict(options)
        transport = str(opts.pop("transport"))
        concurrency = int(opts.pop("concurrency", 8))
        result[name] = DestinationSettings(name=name, transport=transport, concurrency=concurrency, options=opts)
    return result
