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

[audit]
store = "var/audit.sqlite"       # a path (SQLite) or postgresql://… (several workers); env RENKEI_AUDIT_STORE
signing_key_file = "/etc/renkei/audit-signing.pem"  # Ed25519, `renkei audit keygen`; or env RENKEI_AUDIT_SIGNING_KEY
trusted_keys = ["/etc/renkei/audit-signing-2024.pub"]  # public keys of earlier signing keys (rotation)
previous_pseudonym_key_files = ["/etc/renkei/pseudonym-2024.key"]  # earlier pseudonym keys (rotation)
checkpoint_every = 1000          # sign the chain head every N records

[destinations.zei]
transport = "http"               # http | file | an entry point in renkei.adapters
url = "http://127.0.0.1:9101/messages"
concurrency = 8
system = "zei"                   # the route destination it serves (default: its own name)
municipality = "131016"          # or municipalities = [...]; required when the bus serves several

[sources.jumin-131016]           # the id is the envelope's `source` (docs/tenants.md)
municipalities = ["131016"]      # what it may submit for
token_file = "/etc/renkei/tokens/jumin-131016"   # HTTP bearer token (or its sha256:…); or env
                                 # RENKEI_SOURCE_JUMIN_131016_TOKEN; one per line, two while rotating
inbox = "var/inbox/jumin-131016" # its own directory source
amqp_user = "jumin-131016"       # its broker user (AMQP intake)
```

TLS: `broker_url = "amqps://…"` with `[bus] broker_ca_file` (and optionally
`broker_cert_file`/`broker_key_file`); `[intake] tls_cert_file`/`tls_key_file` serve https.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.delivery.policy import RetryPolicy
from bus.errors import ConfigError
from bus.suggest import unknown_keys
from bus.tenancy import token_digests
from bus.validation.checkdigits import is_valid_municipality_code

__all__ = ["AuditSettings", "BusSettings", "DestinationSettings", "IntakeSettings", "LoggingSettings", "Settings",
           "SourceSettings"]

_DEV_KEY_NOTICE = "renkei-development-key-not-for-production"


@dataclass(frozen=True, slots=True)
class BusSettings:
    broker_url: str | None = None
    state_dir: Path = Path("var")
    pseudonym_key: bytes = field(default=_DEV_KEY_NOTICE.encode(), repr=False)
    max_message_bytes: int = 1024 * 1024
    municipalities: tuple[str, ...] = ()
    routes_dir: Path | None = None
    broker_ca_file: Path | None = None  # amqps: the CA of the broker's certificate (default: system CAs)
    broker_cert_file: Path | None = None  # amqps: a client certificate (mutual TLS), with broker_key_file
    broker_key_file: Path | None = None
    shards: int = 1  # RabbitMQ: consistent-hash shards per queue (bus/brokers/amqp.py); embedded: ignored


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    inbox: Path | None = None
    tls_cert_file: Path | None = None  # both set: the HTTP intake serves https only
    tls_key_file: Path | None = None
    amqp_vhosts: dict[str, str] = field(default_factory=dict)  # municipality → vhost of its AMQP intake
    amqp_queue: str = "renkei.submit"


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
    """

    store: str | None = None  # None: audit.sqlite in the bus's state_dir (Settings.audit_store)
    signing_key: bytes | None = field(default=None, repr=False)
    trusted_keys: tuple[bytes, ...] = ()
    previous_pseudonym_keys: tuple[bytes, ...] = field(default=(), repr=False)
    checkpoint_every: int = 1000


@dataclass(frozen=True, slots=True)
class DestinationSettings:
    name: str
    transport: str
    concurrency: int = 8
    options: dict[str, Any] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    system: str = ""  # the route destination it serves; "" = its own name
    municipalities: frozenset[str] | None = None  # None: any municipality (a bus of one)


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """`[sources.<id>]`: a source, what it may submit for and how it proves who it is."""

    id: str
    municipalities: tuple[str, ...]
    token_sha256s: tuple[bytes, ...] = field(default=(), repr=False)  # two while a token is rotated
    inbox: Path | None = None
    amqp_user: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    bus: BusSettings = field(default_factory=BusSettings)
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    destinations: dict[str, DestinationSettings] = field(default_factory=dict)
    sources: dict[str, SourceSettings] = field(default_factory=dict)
    source_file: Path | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # of a destination without its own

    @property
    def audit_store(self) -> str:
        """Where the audit trail is: `[audit] store`, or audit.sqlite beside the bus's state."""
        return self.audit.store or str(self.bus.state_dir / "audit.sqlite")

    def retry_of(self, destination: str) -> RetryPolicy:
        config = self.destinations.get(destination)
        return config.retry if config is not None else self.retry

    @property
    def multi_tenant(self) -> bool:
        """Several municipalities, or destinations bound to one: tenancy is enforced (bus.tenancy)."""
        return len(self.bus.municipalities) > 1 or any(d.municipalities for d in self.destinations.values())

    def where(self, section: str | None = None, key: str | None = None) -> str:
        """`file:line` of `key` in `[section]` (or of the section's header) in the config file."""
        text = self.source_file.read_text(encoding="utf-8") if self.source_file is not None else ""
        return _Where(self.source_file, text)(section, key)

    @property
    def uses_development_key(self) -> bool:
        return self.bus.pseudonym_key == _DEV_KEY_NOTICE.encode()

    @classmethod
    def load(cls, path: Path | None = None, env: dict[str, str] | None = None) -> Settings:
        """Read `path` (if given) and apply RENKEI_* overrides from `env` (default os.environ).

        Every mistake is a ConfigError that names the file and line (or the variable)."""
        env = dict(os.environ if env is None else env)
        data: dict[str, Any] = {}
        text = ""
        if path is not None:
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise ConfigError("config file not found", where=str(path)) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read the config file ({_reason(exc)})", where=str(path)) from None
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"not valid TOML: {exc}", where=str(path)) from None
        base = path.resolve().parent if path is not None else Path.cwd()
        at = _Where(path, text)
        _no_unknown(data, at(), "the top level",
                    ("bus", "intake", "logging", "audit", "retry", "destinations", "sources"))
        bus = _bus(_table(data, "bus", at), env, base, at)
        retry = RetryPolicy().merged(_table(data, "retry", at), lambda key: at("retry", key))
        intake = _intake(_table(data, "intake", at), env, base, at)
        destinations = _destinations(_table(data, "destinations", at), at, retry)
        sources = _sources(_table(data, "sources", at), env, base, at, bus.municipalities)
        _check_tenancy(bus, intake, destinations, sources, at)
        return cls(
            bus=bus,
            intake=intake,
            logging=_logging(_table(data, "logging", at), env, at),
            audit=_audit(_table(data, "audit", at), env, base, at, bus.state_dir),
            destinations=destinations,
            sources=sources,
            source_file=path,
            retry=retry,
        )


class _Where:
    """Says where a setting is: ``file:line`` of its key (found in the text), or the variable."""

    def __init__(self, path: Path | None, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def __call__(self, section: str | None = None, key: str | None = None, env: str | None = None) -> str:
        if env is not None:
            return f"environment variable {env}"
        if self.path is None:
            return "settings"
        line = self._line(section, key)
        return f"{self.path}:{line}" if line else str(self.path)

    def _line(self, section: str | None, key: str | None) -> int | None:
        start = 0
        if section is not None:
            header = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(map(re.escape, section.split("."))) + r"\s*\]")
            found = next((i for i, line in enumerate(self.lines) if header.match(line)), None)
            if found is None:
                return None
            start = found
        if key is None:
            return start + 1 if section is not None else None
        assignment = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
        for i in range(start + (section is not None), len(self.lines)):
            if section is not None and self.lines[i].lstrip().startswith("["):
                break
            if assignment.match(self.lines[i]):
                return i + 1
        return start + 1 if section is not None else None


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__


def _table(data: dict[str, Any], name: str, at: _Where) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a table ([{name}]), got {type(value).__name__}", where=at(key=name))
    return value


def _setting(raw: dict[str, Any], env: dict[str, str], key: str, var: str | None, at: _Where, section: str,
             default: Any) -> tuple[Any, str]:
    """The value of `key` (the environment variable `var` wins) and where it came from."""
    if var is not None and env.get(var):
        return env[var], at(env=var)
    return raw.get(key, default), at(section, key)


def _int(value: Any, where: str, what: str, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{what} must be an integer, got {value!r}", where=where)
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{what} must be an integer, got {value!r}", where=where) from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{what} must be {bounds}, got {number}", where=where)
    return number


def _text(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a non-empty string, got {value!r}", where=where)
    return value


def _no_unknown(data: dict[str, Any], where: str, section: str, known: tuple[str, ...], at: _Where | None = None,
                table: str | None = None) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:  # named at the first unknown key's line when `at` can find it, with a "did you mean"
        where = at(table, unknown[0]) if at is not None else where
        raise ConfigError(unknown_keys(section, unknown, known), where=where)


def _bus(raw: dict[str, Any], env: dict[str, str], base: Path, at: _Where) -> BusSettings:
    known = ("broker_url", "state_dir", "pseudonym_key_file", "max_message_bytes", "municipalities", "routes_dir",
             "broker_ca_file", "broker_cert_file", "broker_key_file", "shards")
    _no_unknown(raw, at("bus"), "[bus]", known, at, "bus")
    key = _pseudonym_key(raw, env, base, at)
    url, where = _setting(raw, env, "broker_url", "RENKEI_BROKER_URL", at, "bus", None)
    if url is not None:
        url = _text(url, where, "[bus] broker_url")
    state_dir, where = _setting(raw, env, "state_dir", "RENKEI_STATE_DIR", at, "bus", "var")
    state_dir = _text(state_dir, where, "[bus] state_dir")
    size, where = _setting(raw, env, "max_message_bytes", "RENKEI_MAX_MESSAGE_BYTES", at, "bus", 1024 * 1024)
    municipalities = raw.get("municipalities", [])
    if not isinstance(municipalities, list) or not all(
        isinstance(m, str) and len(m) == 6 and m.isdigit() for m in municipalities
    ):
        raise ConfigError("[bus] municipalities must be a list of 6-digit 地方公共団体コード strings, "
                          f"got {municipalities!r}", where=at("bus", "municipalities"))
    routes, where = _setting(raw, env, "routes_dir", "RENKEI_ROUTES_DIR", at, "bus", None)
    shards, shards_at = _setting(raw, env, "shards", "RENKEI_BROKER_SHARDS", at, "bus", 1)
    return BusSettings(
        shards=_int(shards, shards_at, "[bus] shards", minimum=1, maximum=64),
        broker_url=url,
        state_dir=base / Path(state_dir),
        pseudonym_key=key,
        max_message_bytes=_int(size, where, "[bus] max_message_bytes", minimum=1),
        municipalities=tuple(municipalities),
        routes_dir=base / _text(routes, where, "[bus] routes_dir") if routes else None,
        broker_ca_file=_file(raw, env, "broker_ca_file", "RENKEI_BROKER_CA_FILE", base, at, "bus"),
        broker_cert_file=_file(raw, env, "broker_cert_file", "RENKEI_BROKER_CERT_FILE", base, at, "bus"),
        broker_key_file=_file(raw, env, "broker_key_file", "RENKEI_BROKER_KEY_FILE", base, at, "bus"),
    )


def _file(raw: dict[str, Any], env: dict[str, str], key: str, var: str, base: Path, at: _Where,
          section: str) -> Path | None:
    """An existing file named by `key` (or `var`), relative to the config file."""
    value, where = _setting(raw, env, key, var, at, section, None)
    if value is None:
        return None
    path = base / _text(value, where, f"[{section}] {key}")
    if not path.is_file():
        raise ConfigError(f"[{section}] {key}: no such file {path}", where=where)
    return path


def _pseudonym_key(raw: dict[str, Any], env: dict[str, str], base: Path, at: _Where) -> bytes:
    if env.get("RENKEI_PSEUDONYM_KEY"):
        if len(env["RENKEI_PSEUDONYM_KEY"].encode()) < 16:
            raise ConfigError("the pseudonym key must be at least 16 bytes", where=at(env="RENKEI_PSEUDONYM_KEY"))
        return env["RENKEI_PSEUDONYM_KEY"].encode()
    key_file, where = _setting(raw, env, "pseudonym_key_file", "RENKEI_PSEUDONYM_KEY_FILE", at, "bus", None)
    if not key_file:
        return _DEV_KEY_NOTICE.encode()
    try:
        key = (base / _text(key_file, where, "[bus] pseudonym_key_file")).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read pseudonym_key_file ({_reason(exc)})", where=where) from None
    if len(key) < 16:
        raise ConfigError("the pseudonym key must be at least 16 bytes", where=where)
    return key


def _intake(raw: dict[str, Any], env: dict[str, str], base: Path, at: _Where) -> IntakeSettings:
    _no_unknown(raw, at("intake"), "[intake]",
                ("http_host", "http_port", "inbox", "tls_cert_file", "tls_key_file", "amqp_vhosts", "amqp_queue"),
                at, "intake")
    host, where = _setting(raw, env, "http_host", "RENKEI_HTTP_HOST", at, "intake", "127.0.0.1")
    host = _text(host, where, "[intake] http_host")
    port, where = _setting(raw, env, "http_port", "RENKEI_HTTP_PORT", at, "intake", 8080)
    port = _int(port, where, "[intake] http_port", minimum=0, maximum=65535)
    inbox = raw.get("inbox")
    if inbox is not None:
        inbox = _text(inbox, at("intake", "inbox"), "[intake] inbox")
    cert = _file(raw, env, "tls_cert_file", "RENKEI_HTTP_TLS_CERT_FILE", base, at, "intake")
    key = _file(raw, env, "tls_key_file", "RENKEI_HTTP_TLS_KEY_FILE", base, at, "intake")
    if (cert is None) != (key is None):
        raise ConfigError("[intake] tls_cert_file and tls_key_file go together (https needs both)",
                          where=at("intake", "tls_cert_file" if cert is None else "tls_key_file"))
    vhosts = raw.get("amqp_vhosts", {})
    if not isinstance(vhosts, dict) or not all(
        is_valid_municipality_code(m) and isinstance(v, str) and v for m, v in vhosts.items()
    ):
        raise ConfigError("[intake] amqp_vhosts maps 地方公共団体コード to vhost names "
                          '({ "131016" = "renkei-131016" })', where=at("intake", "amqp_vhosts"))
    queue = _text(raw.get("amqp_queue", "renkei.submit"), at("intake", "amqp_queue"), "[intake] amqp_queue")
    return IntakeSettings(http_host=host, http_port=port, inbox=base / inbox if inbox else None,
                          tls_cert_file=cert, tls_key_file=key, amqp_vhosts=dict(vhosts), amqp_queue=queue)


def _logging(raw: dict[str, Any], env: dict[str, str], at: _Where) -> LoggingSettings:
    _no_unknown(raw, at("logging"), "[logging]", ("format", "level"), at, "logging")
    fmt, where = _setting(raw, env, "format", "RENKEI_LOG_FORMAT", at, "logging", "console")
    if fmt not in ("console", "json"):
        raise ConfigError(f"[logging] format must be 'console' or 'json', got {fmt!r}", where=where)
    level, where = _setting(raw, env, "level", "RENKEI_LOG_LEVEL", at, "logging", "info")
    if not isinstance(level, str) or level.lower() not in _LEVELS:
        raise ConfigError(f"[logging] level must be one of {', '.join(_LEVELS)}, got {level!r}", where=where)
    return LoggingSettings(format=fmt, level=level.lower())


_LEVELS = ("debug", "info", "warning", "error", "critical")


def _audit(raw: dict[str, Any], env: dict[str, str], base: Path, at: _Where, state_dir: Path) -> AuditSettings:
    known = ("store", "signing_key_file", "trusted_keys", "previous_pseudonym_key_files", "checkpoint_every")
    _no_unknown(raw, at("audit"), "[audit]", known, at, "audit")
    store, where = _setting(raw, env, "store", "RENKEI_AUDIT_STORE", at, "audit", None)
    if store is None:
        store = str(state_dir / "audit.sqlite")
    elif "://" not in _text(store, where, "[audit] store"):
        store = str(base / store)
    every, where = _setting(raw, env, "checkpoint_every", "RENKEI_AUDIT_CHECKPOINT_EVERY", at, "audit", 1000)
    every = _int(every, where, "[audit] checkpoint_every", minimum=1)
    signing_key: bytes | None = None
    if env.get("RENKEI_AUDIT_SIGNING_KEY"):
        signing_key = env["RENKEI_AUDIT_SIGNING_KEY"].encode()
        _check_pem(signing_key, "PRIVATE KEY", at(env="RENKEI_AUDIT_SIGNING_KEY"))
    else:
        key_file, where = _setting(raw, env, "signing_key_file", "RENKEI_AUDIT_SIGNING_KEY_FILE", at, "audit", None)
        if key_file:
            signing_key = _read_key(base / _text(key_file, where, "[audit] signing_key_file"), where)
            _check_pem(signing_key, "PRIVATE KEY", where)
    trusted = []
    for name, where in _key_files(raw, env, "trusted_keys", "RENKEI_AUDIT_TRUSTED_KEYS", at):
        pem = _read_key(base / name, where)
        _check_pem(pem, "PUBLIC KEY", where)
        trusted.append(pem)
    previous = []
    for name, where in _key_files(raw, env, "previous_pseudonym_key_files",
                                  "RENKEI_AUDIT_PREVIOUS_PSEUDONYM_KEY_FILES", at):
        key = _read_key(base / name, where)
        if len(key) < 16:
            raise ConfigError(f"the previous pseudonym key {name} is shorter than 16 bytes", where=where)
        previous.append(key)
    return AuditSettings(store=store, signing_key=signing_key, trusted_keys=tuple(trusted),
                         previous_pseudonym_keys=tuple(previous), checkpoint_every=every)


def _key_files(raw: dict[str, Any], env: dict[str, str], key: str, var: str, at: _Where) -> list[tuple[str, str]]:
    """File names from a list setting, or from `var` (separated by os.pathsep), each with where it was given."""
    if env.get(var):
        return [(name, at(env=var)) for name in env[var].split(os.pathsep) if name]
    names = raw.get(key, [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"[audit] {key} must be a list of file paths, got {names!r}", where=at("audit", key))
    return [(name, at("audit", key)) for name in names]


def _read_key(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path} ({_reason(exc)})", where=where) from None


def _check_pem(pem: bytes, label: str, where: str) -> None:
    """A cheap shape check; bus.audit.signing parses the key itself when the trail opens."""
    if f"-----BEGIN {label}-----".encode() not in pem:
        raise ConfigError(f"not a PEM {label.lower()} (expected '-----BEGIN {label}-----'; "
                          "make one with `renkei audit keygen`)", where=where)


def _retry_where(at: _Where, section: str, key: str) -> str:
    return at(section, key)


def _destinations(raw: dict[str, Any], at: _Where, retry: RetryPolicy) -> dict[str, DestinationSettings]:
    result = {}
    for name, options in raw.items():
        section = f"destinations.{name}"
        if not isinstance(options, dict) or "transport" not in options:
            raise ConfigError(f"[{section}] needs a 'transport'", where=at(section))
        opts = dict(options)
        transport = _text(opts.pop("transport"), at(section, "transport"), f"[{section}] transport")
        concurrency = _int(opts.pop("concurrency", 8), at(section, "concurrency"), f"[{section}] concurrency",
                           minimum=1, maximum=1024)
        own = opts.pop("retry", {})
        if not isinstance(own, dict):
            raise ConfigError(f"[{section}] retry must be a table ([{section}.retry])", where=at(section, "retry"))
        policy = retry.merged(own, functools.partial(_retry_where, at, f"{section}.retry"))
        system = opts.pop("system", "")
        if system:
            system = _text(system, at(section, "system"), f"[{section}] system")
        municipalities = _destination_municipalities(opts, at, section)
        result[name] = DestinationSettings(name=name, transport=transport, concurrency=concurrency, options=opts,
                                           retry=policy, system=system, municipalities=municipalities)
    return result


def _codes(value: Any, where: str, what: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(is_valid_municipality_code(v) for v in values):
        raise ConfigError(f"{what} must be 地方公共団体コード (6 digits with a valid check digit, e.g. \"131016\"), "
                          f"got {value!r}", where=where)
    return tuple(values)


def _destination_municipalities(opts: dict[str, Any], at: _Where, section: str) -> frozenset[str] | None:
    if "municipality" in opts and "municipalities" in opts:
        raise ConfigError(f"[{section}] give municipality or municipalities, not both", where=at(section))
    key = "municipality" if "municipality" in opts else "municipalities"
    if key not in opts:
        return None
    return frozenset(_codes(opts.pop(key), at(section, key), f"[{section}] {key}"))


_SOURCE_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def _sources(raw: dict[str, Any], env: dict[str, str], base: Path, at: _Where,
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
        _no_unknown(options, at(section), f"[{section}]", ("municipalities", "token_file", "inbox", "amqp_user"), at,
                    section)
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
            token_path = base / _text(options["token_file"], where, f"[{section}] token_file")
            try:
                configured = token_path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read the token file {token_path} ({_reason(exc)})", where=where) from None
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
            inbox=base / _text(inbox, at(section, "inbox"), f"[{section}] inbox") if inbox else None,
            amqp_user=_text(user, at(section, "amqp_user"), f"[{section}] amqp_user") if user else None,
        )
    return result


def _check_tenancy(bus: BusSettings, intake: IntakeSettings, destinations: dict[str, DestinationSettings],
                   sources: dict[str, SourceSettings], at: _Where) -> None:
    """The rules that span sections: a bus of several municipalities binds every destination."""
    several = len(bus.municipalities) > 1 or any(d.municipalities for d in destinations.values())
    for name, config in destinations.items():
        if several and not config.municipalities:
            raise ConfigError(f"[destinations.{name}] needs municipality = \"…\": this bus serves several "
                              "municipalities and a destination belongs to one (or a list)",
                              where=at(f"destinations.{name}"))
        outside = sorted((config.municipalities or set()) - set(bus.municipalities)) if bus.municipalities else []
        if outside:
            raise ConfigError(f"[destinations.{name}] municipalities {', '.join(outside)} are not served by this "
                              "bus ([bus] municipalities)", where=at(f"destinations.{name}"))
    if sources and intake.inbox is not None:
        raise ConfigError("[intake] inbox is a source of no one: with [sources] configured, give each source "
                          "its own inbox ([sources.<id>] inbox)", where=at("intake", "inbox"))
    users = [s.amqp_user for s in sources.values() if s.amqp_user]
    if len(users) != len(set(users)):
        raise ConfigError("two sources share one amqp_user: a broker user is one source", where=at())
    if intake.amqp_vhosts and not users:
        raise ConfigError("[intake] amqp_vhosts needs sources that publish over AMQP ([sources.<id>] amqp_user)",
                          where=at("intake", "amqp_vhosts"))
    if intake.amqp_vhosts and not bus.broker_url:
        raise ConfigError("[intake] amqp_vhosts needs a RabbitMQ broker_url (the AMQP intake uses its host and "
                          "credentials)", where=at("intake", "amqp_vhosts"))
