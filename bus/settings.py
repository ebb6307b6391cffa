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
http_header_timeout = 10         # seconds for a request head, http_body_timeout = 30 for its body;
http_max_connections = 100       # slow clients are cut off, more connections at once get 503
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
checkpoint_interval = 5          # …and at least every N seconds while records are written (0: off)
witness = "/mnt/witness/renkei-audit.jsonl"  # every signed head also kept here (a file elsewhere, or postgresql://…)
routed_records = "per_change"    # one `routed` record naming every destination of a change, or "per_destination"

[state]
store = "postgresql://renkei@db/renkei"  # the bus's own state shared by every process (env RENKEI_STATE_STORE);
                                 # omitted: SQLite files in state_dir (one machine)

[destinations.zei]
transport = "http"               # http | file | an entry point in renkei.adapters
url = "http://127.0.0.1:9101/messages"
concurrency = 8
batch_size = 1                   # > 1: up to N changes per request, if the system takes batches
batch_linger_ms = 0              # with batches: wait up to this long for one to fill (docs/delivery-contract.md)
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

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.delivery.policy import RetryPolicy
from bus.errors import ConfigError
from bus.settings_batching import BATCH_KEYS, BatchSettings, read_batching
from bus.settings_read import Where, no_unknown, os_reason, table_of
from bus.settings_sections import (
    DEV_KEY_NOTICE,
    AuditSettings,
    BusSettings,
    DestinationSettings,
    IntakeSettings,
    LoggingSettings,
    SourceSettings,
    read_audit,
    read_bus,
    read_destinations,
    read_intake,
    read_logging,
    read_sources,
)
from bus.settings_state import StateSettings, read_state
from bus.topology import StateDir

__all__ = ["AuditSettings", "BusSettings", "DestinationSettings", "IntakeSettings", "LoggingSettings", "Settings",
           "SourceSettings", "StateSettings"]


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
    batching: BatchSettings = field(default_factory=BatchSettings)  # [bus] batch_size … (bus.settings_batching)
    state: StateSettings = field(default_factory=StateSettings)

    @property
    def state_files(self) -> StateDir:
        """The bus's state: the files of `[bus] state_dir`, and the shared `[state] store` if any."""
        return StateDir(self.bus.state_dir, self.state.store)

    @property
    def audit_store(self) -> str:
        """Where the audit trail is: `[audit] store`, or audit.sqlite beside the bus's state."""
        return self.audit.store or str(StateDir(self.bus.state_dir).audit_file)

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
        return Where(self.source_file, text)(section, key)

    @property
    def uses_development_key(self) -> bool:
        return self.bus.pseudonym_key == DEV_KEY_NOTICE.encode()

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
                raise ConfigError(f"cannot read the config file ({os_reason(exc)})", where=str(path)) from None
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"not valid TOML: {exc}", where=str(path)) from None
        base = path.resolve().parent if path is not None else Path.cwd()
        at = Where(path, text)
        no_unknown(data, at(), "the top level",
                    ("bus", "intake", "logging", "audit", "retry", "destinations", "sources",
                     "console", "state"))  # [console]: read by bus.console.config
        bus_table = table_of(data, "bus", at)
        bus = read_bus({k: v for k, v in bus_table.items() if k not in BATCH_KEYS}, env, base, at)
        retry = RetryPolicy().merged(table_of(data, "retry", at), lambda key: at("retry", key))
        intake = read_intake(table_of(data, "intake", at), env, base, at)
        destinations = read_destinations(table_of(data, "destinations", at), at, retry)
        sources = read_sources(table_of(data, "sources", at), env, base, at, bus.municipalities)
        check_tenancy(bus, intake, destinations, sources, at)
        return cls(
            bus=bus,
            intake=intake,
            logging=read_logging(table_of(data, "logging", at), env, at),
            audit=read_audit(table_of(data, "audit", at), env, base, at, bus.state_dir),
            destinations=destinations,
            sources=sources,
            source_file=path,
            retry=retry,
            batching=read_batching(bus_table, env, at),
            state=read_state(table_of(data, "state", at), env, at),
        )


def check_tenancy(bus: BusSettings, intake: IntakeSettings, destinations: dict[str, DestinationSettings],
                   sources: dict[str, SourceSettings], at: Where) -> None:
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
