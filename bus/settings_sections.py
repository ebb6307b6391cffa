"""The sections of renkei.toml ([bus], [intake], [logging], [audit], [destinations.*],
[sources.*]): each one's frozen settings object and its reader (bus.settings assembles them)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.delivery.policy import RetryPolicy
from bus.errors import ConfigError
from bus.settings_read import (
    Where,
    as_flag,
    as_int,
    as_text,
    check_pem,
    file_setting,
    key_files,
    no_unknown,
    os_reason,
    read_key,
    setting_of,
)
from bus.suggest import suggest
from bus.tenancy import token_digests
from bus.topology import SUBMIT_QUEUE, StateDir
from bus.validation.checkdigits import is_valid_municipality_code

__all__ = ["DEV_KEY_NOTICE", "AuditSettings", "BusSettings", "DestinationSettings", "IntakeSettings",
           "LoggingSettings", "SourceSettings", "read_audit", "read_bus", "read_destinations",
           "read_intake", "read_logging", "read_sources"]

DEV_KEY_NOTICE = "renkei-development-key-not-for-production"


@dataclass(frozen=True, slots=True)
class BusSettings:
    broker_url: str | None = None
    state_dir: Path = Path("var")
    pseudonym_key: bytes = field(default=DEV_KEY_NOTICE.encode(), repr=False)
    max_message_bytes: int = 1024 * 1024
    municipalities: tuple[str, ...] = ()
    routes_dir: Path | None = None
    broker_ca_file: Path | None = None  # amqps: the CA of the broker's certificate (default: system CAs)
    broker_cert_file: Path | None = None  # amqps: a client certificate (mutual TLS), with broker_key_file
    broker_key_file: Path | None = None
    shards: int = 1  # RabbitMQ: consistent-hash shards per queue (bus/brokers/amqp/topology.py); embedded: ignored
    amqp_fast_path: bool = True  # RabbitMQ: publish and ack past aiormq's public API (bus/brokers/amqp/fastpath.py)
    route_fast_path: bool = True  # route stage: bus.routing.templates and bus.stages.handoff (False: plain path)
    health_host: str = "127.0.0.1"  # /metrics, /healthz, /readyz of a `renkei run` without an HTTP intake
    health_port: int = 9464  # 0: no such listener (docs/console.md)


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    inbox: Path | None = None
    tls_cert_file: Path | None = None  # both set: the HTTP intake serves https only
    tls_key_file: Path | None = None
    amqp_vhosts: dict[str, str] = field(default_factory=dict)  # municipality → vhost of its AMQP intake
    amqp_queue: str = SUBMIT_QUEUE
    http_header_timeout: int = 10  # seconds for a request head (slow clients are cut off)
    http_body_timeout: int = 30  # seconds for a request body
    http_max_connections: int = 100  # beyond: 503


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    format: str = "console"
    level: str = "info"


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """The audit trail (DESIGN §6): where it is kept, how its head is signed, old keys.

    `store` is a SQLite file path or a ``postgresql://`` URL. `signing_key` is the PEM of the
    Ed25519 private key that signs checkpoints (None: no checkpoints are written);
    `trusted_keys` are PEMs of public keys of earlier signing keys, still accepted by verify.
    `previous_pseudonym_keys` are earlier pseudonym keys, tried by `renkei audit trail`.
    `checkpoint_interval` (seconds, 0 off): the head is signed at least this often while records
    are written. `witness` (a file path or postgresql:// URL, None: none): every signed head is
    also kept there, outside the store, so verify catches a store cut short or rolled back.
    `routed_records`: "per_change" (one `routed` record naming every destination of a change,
    bus.audit.fanout) or "per_destination" (one record each, as before December 2026).
    """

    store: str | None = None  # None: audit.sqlite in the bus's state_dir (Settings.audit_store)
    signing_key: bytes | None = field(default=None, repr=False)
    trusted_keys: tuple[bytes, ...] = ()
    previous_pseudonym_keys: tuple[bytes, ...] = field(default=(), repr=False)
    checkpoint_every: int = 1000
    checkpoint_interval: float = 5.0
    witness: str | None = None
    routed_records: str = "per_change"


ROUTED_RECORDS = ("per_change", "per_destination")


@dataclass(frozen=True, slots=True)
class DestinationSettings:
    name: str
    transport: str
    concurrency: int = 8
    options: dict[str, Any] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    system: str = ""  # the route destination it serves; "" = its own name
    municipalities: frozenset[str] | None = None  # None: any municipality (a bus of one)
    schema_version: int | None = None  # the version of its routes' target kinds it takes (None: the latest)


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """`[sources.<id>]`: a source, what it may submit for and how it proves who it is."""

    id: str
    municipalities: tuple[str, ...]
    token_sha256s: tuple[bytes, ...] = field(default=(), repr=False)  # two while a token is rotated
    inbox: Path | None = None
    amqp_user: str | None = None


def read_bus(raw: dict[str, Any], env: dict[str, str], base: Path, at: Where) -> BusSettings:
    known = ("broker_url", "state_dir", "pseudonym_key_file", "max_message_bytes", "municipalities", "routes_dir",
             "broker_ca_file", "broker_cert_file", "broker_key_file", "shards", "amqp_fast_path",
             "health_host", "health_port", "route_fast_path")
    no_unknown(raw, at("bus"), "[bus]", known, at)
    key = _pseudonym_key(raw, env, base, at)
    url, where = setting_of(raw, env, "broker_url", "RENKEI_BROKER_URL", at, "bus", None)
    if url is not None:
        url = as_text(url, where, "[bus] broker_url")
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in ("amqp", "amqps", "sqlite"):  # said here, with file:line, not when it is first used
            said = f"an unknown scheme {scheme}://" if scheme else "no scheme"  # never the URL: it may hold a password
            raise ConfigError(f"[bus] broker_url has {said} (use amqp://, amqps://, sqlite:///path, or no URL for "
                              f"the embedded broker){suggest(scheme, ('amqp', 'amqps', 'sqlite')) if scheme else ''}",
                              where=where)
    state_dir, where = setting_of(raw, env, "state_dir", "RENKEI_STATE_DIR", at, "bus", "var")
    state_dir = as_text(state_dir, where, "[bus] state_dir")
    size, where = setting_of(raw, env, "max_message_bytes", "RENKEI_MAX_MESSAGE_BYTES", at, "bus", 1024 * 1024)
    municipalities = raw.get("municipalities", [])
    if not isinstance(municipalities, list) or not all(
        isinstance(m, str) and len(m) == 6 and m.isdigit() for m in municipalities
    ):
        raise ConfigError("[bus] municipalities must be a list of 6-digit 地方公共団体コード strings, "
                          f"got {municipalities!r}", where=at("bus", "municipalities"))
    routes, where = setting_of(raw, env, "routes_dir", "RENKEI_ROUTES_DIR", at, "bus", None)
    shards, shards_at = setting_of(raw, env, "shards", "RENKEI_BROKER_SHARDS", at, "bus", 1)
    fast, fast_at = setting_of(raw, env, "amqp_fast_path", "RENKEI_AMQP_FAST_PATH", at, "bus", True)
    fast_route, fast_route_at = setting_of(raw, env, "route_fast_path", "RENKEI_ROUTE_FAST_PATH", at, "bus",
                                         True)
    health_host, host_at = setting_of(raw, env, "health_host", "RENKEI_HEALTH_HOST", at, "bus", "127.0.0.1")
    health_port, port_at = setting_of(raw, env, "health_port", "RENKEI_HEALTH_PORT", at, "bus", 9464)
    return BusSettings(
        health_host=as_text(health_host, host_at, "[bus] health_host"),
        health_port=as_int(health_port, port_at, "[bus] health_port", maximum=65535),
        amqp_fast_path=as_flag(fast, fast_at, "[bus] amqp_fast_path"),
        route_fast_path=as_flag(fast_route, fast_route_at, "[bus] route_fast_path"),
        shards=as_int(shards, shards_at, "[bus] shards", minimum=1, maximum=64),
        broker_url=url,
        state_dir=base / Path(state_dir),
        pseudonym_key=key,
        max_message_bytes=as_int(size, where, "[bus] max_message_bytes", minimum=1),
        municipalities=tuple(municipalities),
        routes_dir=base / as_text(routes, where, "[bus] routes_dir") if routes else None,
        broker_ca_file=file_setting(raw, env, "broker_ca_file", "RENKEI_BROKER_CA_FILE", base, at, "bus"),
        broker_cert_file=file_setting(raw, env, "broker_cert_file", "RENKEI_BROKER_CERT_FILE", base, at, "bus"),
        broker_key_file=file_setting(raw, env, "broker_key_file", "RENKEI_BROKER_KEY_FILE", base, at, "bus"),
    )


def _pseudonym_key(raw: dict[str, Any], env: dict[str, str], base: Path, at: Where) -> bytes:
    if env.get("RENKEI_PSEUDONYM_KEY"):
        if len(env["RENKEI_PSEUDONYM_KEY"].encode()) < 16:
            raise ConfigError("the pseudonym key must be at least 16 bytes", where=at(env="RENKEI_PSEUDONYM_KEY"))
        return env["RENKEI_PSEUDONYM_KEY"].encode()
    key_file, where = setting_of(raw, env, "pseudonym_key_file", "RENKEI_PSEUDONYM_KEY_FILE", at, "bus", None)
    if not key_file:
        return DEV_KEY_NOTICE.encode()
    try:
        key = (base / as_text(key_file, where, "[bus] pseudonym_key_file")).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read pseudonym_key_file ({os_reason(exc)})", where=where) from None
    if len(key) < 16:
        raise ConfigError("the pseudonym key must be at least 16 bytes", where=where)
    return key


def read_intake(raw: dict[str, Any], env: dict[str, str], base: Path, at: Where) -> IntakeSettings:
    no_unknown(raw, at("intake"), "[intake]",
                ("http_host", "http_port", "inbox", "tls_cert_file", "tls_key_file", "amqp_vhosts", "amqp_queue",
                 "http_header_timeout", "http_body_timeout", "http_max_connections"), at)
    host, where = setting_of(raw, env, "http_host", "RENKEI_HTTP_HOST", at, "intake", "127.0.0.1")
    host = as_text(host, where, "[intake] http_host")
    port, where = setting_of(raw, env, "http_port", "RENKEI_HTTP_PORT", at, "intake", 8080)
    port = as_int(port, where, "[intake] http_port", minimum=0, maximum=65535)
    inbox = raw.get("inbox")
    if inbox is not None:
        inbox = as_text(inbox, at("intake", "inbox"), "[intake] inbox")
    cert = file_setting(raw, env, "tls_cert_file", "RENKEI_HTTP_TLS_CERT_FILE", base, at, "intake")
    key = file_setting(raw, env, "tls_key_file", "RENKEI_HTTP_TLS_KEY_FILE", base, at, "intake")
    if (cert is None) != (key is None):
        raise ConfigError("[intake] tls_cert_file and tls_key_file go together (https needs both)",
                          where=at("intake", "tls_cert_file" if cert is None else "tls_key_file"))
    vhosts = raw.get("amqp_vhosts", {})
    if not isinstance(vhosts, dict) or not all(
        is_valid_municipality_code(m) and isinstance(v, str) and v for m, v in vhosts.items()
    ):
        raise ConfigError("[intake] amqp_vhosts maps 地方公共団体コード to vhost names "
                          '({ "131016" = "renkei-131016" })', where=at("intake", "amqp_vhosts"))
    queue = as_text(raw.get("amqp_queue", SUBMIT_QUEUE), at("intake", "amqp_queue"), "[intake] amqp_queue")
    limits = {name: as_int(raw.get(name, default), at("intake", name), f"[intake] {name}", minimum=1, maximum=3600)
              for name, default in (("http_header_timeout", 10), ("http_body_timeout", 30),
                                    ("http_max_connections", 100))}
    return IntakeSettings(http_host=host, http_port=port, inbox=base / inbox if inbox else None,
                          tls_cert_file=cert, tls_key_file=key, amqp_vhosts=dict(vhosts), amqp_queue=queue, **limits)


def read_logging(raw: dict[str, Any], env: dict[str, str], at: Where) -> LoggingSettings:
    no_unknown(raw, at("logging"), "[logging]", ("format", "level"), at)
    fmt, where = setting_of(raw, env, "format", "RENKEI_LOG_FORMAT", at, "logging", "console")
    if fmt not in ("console", "json"):
        raise ConfigError(f"[logging] format must be 'console' or 'json', got {fmt!r}", where=where)
    level, where = setting_of(raw, env, "level", "RENKEI_LOG_LEVEL", at, "logging", "info")
    if not isinstance(level, str) or level.lower() not in _LEVELS:
        raise ConfigError(f"[logging] level must be one of {', '.join(_LEVELS)}, got {level!r}", where=where)
    return LoggingSettings(format=fmt, level=level.lower())


_LEVELS = ("debug", "info", "warning", "error", "critical")


def read_audit(raw: dict[str, Any], env: dict[str, str], base: Path, at: Where, state_dir: Path) -> AuditSettings:
    known = ("store", "signing_key_file", "trusted_keys", "previous_pseudonym_key_files", "checkpoint_every",
             "checkpoint_interval", "witness", "routed_records")
    no_unknown(raw, at("audit"), "[audit]", known, at)
    routed, where = setting_of(raw, env, "routed_records", "RENKEI_AUDIT_ROUTED_RECORDS", at, "audit", "per_change")
    if routed not in ROUTED_RECORDS:
        raise ConfigError(f"[audit] routed_records must be one of {', '.join(ROUTED_RECORDS)}, got {routed!r}",
                          where=where)
    store, where = setting_of(raw, env, "store", "RENKEI_AUDIT_STORE", at, "audit", None)
    if store is None:
        store = str(StateDir(state_dir).audit_file)
    elif "://" not in as_text(store, where, "[audit] store"):
        store = str(base / store)
    every, where = setting_of(raw, env, "checkpoint_every", "RENKEI_AUDIT_CHECKPOINT_EVERY", at, "audit", 1000)
    every = as_int(every, where, "[audit] checkpoint_every", minimum=1)
    interval, witness = _audit_timing(raw, env, base, at)
    signing_key: bytes | None = None
    if env.get("RENKEI_AUDIT_SIGNING_KEY"):
        signing_key = env["RENKEI_AUDIT_SIGNING_KEY"].encode()
        check_pem(signing_key, "PRIVATE KEY", at(env="RENKEI_AUDIT_SIGNING_KEY"))
    else:
        key_file, where = setting_of(raw, env, "signing_key_file", "RENKEI_AUDIT_SIGNING_KEY_FILE", at, "audit", None)
        if key_file:
            signing_key = read_key(base / as_text(key_file, where, "[audit] signing_key_file"), where)
            check_pem(signing_key, "PRIVATE KEY", where)
    trusted = []
    for name, where in key_files(raw, env, "trusted_keys", "RENKEI_AUDIT_TRUSTED_KEYS", at):
        pem = read_key(base / name, where)
        check_pem(pem, "PUBLIC KEY", where)
        trusted.append(pem)
    previous = []
    for name, where in key_files(raw, env, "previous_pseudonym_key_files",
                                  "RENKEI_AUDIT_PREVIOUS_PSEUDONYM_KEY_FILES", at):
        key = read_key(base / name, where)
        if len(key) < 16:
            raise ConfigError(f"the previous pseudonym key {name} is shorter than 16 bytes", where=where)
        previous.append(key)
    return AuditSettings(store=store, signing_key=signing_key, trusted_keys=tuple(trusted),
                         previous_pseudonym_keys=tuple(previous), checkpoint_every=every,
                         checkpoint_interval=interval, witness=witness, routed_records=routed)


def _audit_timing(raw: dict[str, Any], env: dict[str, str], base: Path, at: Where) -> tuple[float, str | None]:
    """[audit] checkpoint_interval (seconds, 0 off) and witness (a path, relative to the file, or a URL)."""
    interval, where = setting_of(raw, env, "checkpoint_interval", "RENKEI_AUDIT_CHECKPOINT_INTERVAL", at, "audit", 5.0)
    try:
        seconds = -1.0 if isinstance(interval, bool) else float(interval)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise ConfigError(f"[audit] checkpoint_interval must be seconds from 0 (off) to 3600, got {interval!r}",
                          where=where)
    witness, where = setting_of(raw, env, "witness", "RENKEI_AUDIT_WITNESS", at, "audit", None)
    if witness is not None and "://" not in as_text(witness, where, "[audit] witness"):
        witness = str(base / witness)
    return seconds, witness


def _retry_where(at: Where, section: str, key: str) -> str:
    return at(section, key)


def read_destinations(raw: dict[str, Any], at: Where, retry: RetryPolicy) -> dict[str, DestinationSettings]:
    result = {}
    for name, options in raw.items():
        section = f"destinations.{name}"
        if not isinstance(options, dict) or "transport" not in options:
            raise ConfigError(f"[{section}] needs a 'transport'", where=at(section))
        opts = dict(options)
        transport = as_text(opts.pop("transport"), at(section, "transport"), f"[{section}] transport")
        concurrency = as_int(opts.pop("concurrency", 8), at(section, "concurrency"), f"[{section}] concurrency",
                           minimum=1, maximum=1024)
        own = opts.pop("retry", {})
        if not isinstance(own, dict):
            raise ConfigError(f"[{section}] retry must be a table ([{section}.retry])", where=at(section, "retry"))
        policy = retry.merged(own, functools.partial(_retry_where, at, f"{section}.retry"))
        system = opts.pop("system", "")
        if system:
            system = as_text(system, at(section, "system"), f"[{section}] system")
        municipalities = _destination_municipalities(opts, at, section)
        pinned = opts.pop("schema_version", None)
        if pinned is not None:  # whether the kinds have it is checked against the routes (bus.config_check)
            pinned = as_int(pinned, at(section, "schema_version"), f"[{section}] schema_version", minimum=1)
        result[name] = DestinationSettings(name=name, transport=transport, concurrency=concurrency, options=opts,
                                           retry=policy, system=system, municipalities=municipalities,
                                           schema_version=pinned)
    return result


def _codes(value: Any, where: str, what: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(is_valid_municipality_code(v) for v in values):
        raise ConfigError(f"{what} must be 地方公共団体コード (6 digits with a valid check digit, e.g. \"131016\"), "
                          f"got {value!r}", where=where)
    return tuple(values)


def _destination_municipalities(opts: dict[str, Any], at: Where, section: str) -> frozenset[str] | None:
    if "municipality" in opts and "municipalities" in opts:
        raise ConfigError(f"[{section}] give municipality or municipalities, not both", where=at(section))
    key = "municipality" if "municipality" in opts else "municipalities"
    if key not in opts:
        return None
    return frozenset(_codes(opts.pop(key), at(section, key), f"[{section}] {key}"))


_SOURCE_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def read_sources(raw: dict[str, Any], env: dict[str, str], base: Path, at: Where,
             served: tuple[str, ...]) -> dict[str, SourceSettings]:
    """`[sources.<id>]`: tokens are read here and only their SHA-256 digest is kept."""
    result = {}
    for source, options in raw.items():
        section = f"sources.{source}"
        if not _SOURCE_ID.fullmatch(source) or source.isdigit():
            raise ConfigError(f"[{section}]: a source id is lower-case letters, digits, '-', '_' or '.' "
                              "(not all digits)", where=at(section))
        if not isinstance(options, dict):
            raise ConfigError(f"[{section}] must be a table", where=at(section))
        no_unknown(options, at(section), f"[{section}]", ("municipalities", "token_file", "inbox", "amqp_user"),
                   at)
        municipalities = _codes(options.get("municipalities"), at(section, "municipalities"),
                                f"[{section}] municipalities")
        outside = sorted(set(municipalities) - set(served)) if served else []
        if outside:
            raise ConfigError(f"[{section}] municipalities {', '.join(outside)} are not served by this bus "
                              f"([bus] municipalities)", where=at(section, "municipalities"))
        var = "RENKEI_SOURCE_" + re.sub(r"[^A-Z0-9]", "_", source.upper()) + "_TOKEN"
        digests: tuple[bytes, ...] = ()
        if env.get(var):
            configured, where = env[var], at(env=var)
        elif options.get("token_file"):
            where = at(section, "token_file")
            token_path = base / as_text(options["token_file"], where, f"[{section}] token_file")
            try:
                configured = token_path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read the token file {token_path} ({os_reason(exc)})", where=where) from None
        else:
            configured = ""
        if configured:
            try:
                digests = token_digests(configured)
            except ValueError as exc:
                raise ConfigError(f"[{section}] token: {exc}", where=where) from None
        inbox = options.get("inbox")
        user = options.get("amqp_user")
        if not digests and not inbox and not user:
            raise ConfigError(f"[{section}] has no way to submit: set token_file (or {var}), inbox or amqp_user",
                              where=at(section))
        result[source] = SourceSettings(
            id=source, municipalities=municipalities, token_sha256s=digests,
            inbox=base / as_text(inbox, at(section, "inbox"), f"[{section}] inbox") if inbox else None,
            amqp_user=as_text(user, at(section, "amqp_user"), f"[{section}] amqp_user") if user else None,
        )
    return result
