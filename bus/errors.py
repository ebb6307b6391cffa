"""The errors of renkei, one root and a shallow tree.

    RenkeiError
    ├── ConfigError            a settings, route or catalog file is wrong (says file:line)
    │   └── RouteErrors            every mistake found in the route files at once
    ├── ValidationFailed       a message was rejected; carries the list of Issues
    ├── BodyTooLarge           a request or file is longer than the size cap (before parsing)
    ├── SourceRefused          a source refused before its message entered the bus (A401/A403)
    │   ├── AuthenticationFailed   no or unknown credentials (HTTP 401)
    │   └── SourceForbidden        a known source, another municipality's change (HTTP 403)
    ├── StoreUnreadable        a state file exists but cannot be read (damaged, locked, not SQLite)
    ├── BrokerError            the broker refused or lost contact
    │   ├── PublishNotConfirmed    the broker nacked, returned (unroutable) or timed out
    │   └── BrokerUnavailable      cannot connect / connection lost
    ├── DeliveryError          flow control from sinks; not a bug, never logged as a failure
    │   ├── TransientError         retry later (5xx, timeout, connection refused)
    │   │   └── HttpTransientError     (adapters.transports.errors) with the HTTP status
    │   └── PermanentError         dead-letter now (4xx, rejected by the receiver)
    │       └── HttpPermanentError     (adapters.transports.errors) with the HTTP status
    ├── DeadLetterNotFound     an operator named a dead letter that does not exist
    ├── AuditStoreError        the audit store cannot be opened, read or written
    ├── PersonalDataInAudit    an audit event would carry personal data (also a ValueError)
    └── ExportUnreadable       a file is not an audit export (also a ValueError)

Every error a user can cause says what was wrong, where, and what to do.
Messages never carry personal data in plain text (see bus.masking).
Private control-flow exceptions (a simulator's outage, a store's retried job) stay in their
modules and never leave them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bus.validation.issues import Issue

__all__ = [
    "AuditStoreError",
    "AuthenticationFailed",
    "BodyTooLarge",
    "BrokerError",
    "BrokerUnavailable",
    "ConfigError",
    "DeadLetterNotFound",
    "DeliveryError",
    "ExportUnreadable",
    "PermanentError",
    "PersonalDataInAudit",
    "PublishNotConfirmed",
    "RenkeiError",
    "RouteErrors",
    "SourceForbidden",
    "SourceRefused",
    "StateStoreError",
    "StoreUnreadable",
    "TransientError",
    "ValidationFailed",
]


class RenkeiError(Exception):
    """Root of every error renkei raises on purpose."""


class ConfigError(RenkeiError):
    """A configuration, route or catalog file is wrong.

    `where` is "file:line" (or "file") so the integrator can go straight to it.
    """

    def __init__(self, message: str, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ValidationFailed(RenkeiError):
    """A message failed validation; `issues` lists every problem found.

    `municipality` is the 地方公共団体コード the message names, when it could still be read
    (the message parsed, and the code has six digits and a valid check digit): the intake checks it against the
    source before it keeps an invalid message, so another municipality's data is refused
    (403, not kept) whether or not it is valid."""

    def __init__(self, issues: list[Issue], *, municipality: str | None = None) -> None:
        self.issues = issues
        self.municipality = municipality
        first = issues[0] if issues else None
        summary = f"{first.code} at {first.path or '/'}: {first.message}" if first else "invalid message"
        more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(summary + more)


class StoreUnreadable(RenkeiError):
    """A store's file (state, delivery, broker) exists but cannot be read; says which and why."""


class BrokerError(RenkeiError):
    """The broker refused an operation or cannot be reached."""


class PublishNotConfirmed(BrokerError):
    """A publish was nacked, returned as unroutable, or not confirmed in time: not accepted."""


class BrokerUnavailable(BrokerError):
    """No connection to the broker."""


class DeliveryError(RenkeiError):
    """Flow control raised by a sink: what to do with the message next."""


class TransientError(DeliveryError):
    """The destination could not take the message now; retry later.

    `retry_after`: seconds the destination asked the bus to wait (an HTTP `Retry-After`), or None;
    the deliver stage never retries sooner (bus.stages.deliver)."""

    retry_after: float | None = None


class PermanentError(DeliveryError):
    """The destination will never take this message; dead-letter it now."""


class RouteErrors(ConfigError):
    """Every problem found in the route files; `errors` lists them in file and line order."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        listing = "\n".join(str(e) for e in errors)
        super().__init__(f"{len(errors)} problem(s) in the route files:\n{listing}")

    def __iter__(self) -> Iterator[ConfigError]:
        return iter(self.errors)

    def __len__(self) -> int:
        return len(self.errors)


class BodyTooLarge(RenkeiError):
    """A request body or a file is longer than the cap (checked before anything is parsed)."""


#: the audit codes of a refused source (docs/error-codes.md)
AUTH_FAILED = "A401"  # no, malformed or unknown credentials
FORBIDDEN = "A403"  # a known source submitting for a municipality it may not


class SourceRefused(RenkeiError):
    """A source was refused before its message entered the bus; `code` is A401 or A403."""

    code = AUTH_FAILED
    status = 401


class AuthenticationFailed(SourceRefused):
    """No credentials, or credentials the bus does not know (HTTP 401)."""


class SourceForbidden(SourceRefused):
    """A known source submitting for a municipality it may not (HTTP 403)."""

    code = FORBIDDEN
    status = 403

    def __init__(self, source: str, municipality: str | None, why: str) -> None:
        self.source = source
        self.municipality = municipality
        super().__init__(why)


class DeadLetterNotFound(RenkeiError):
    """No dead letter has this id (or it was replayed or discarded already)."""


class StateStoreError(RenkeiError):
    """The shared state store (PostgreSQL, `[state] store`) cannot be opened, read or written."""


class AuditStoreError(RenkeiError):
    """The audit store cannot be opened, read or written."""


class PersonalDataInAudit(RenkeiError, ValueError):
    """An audit event would have put personal data, or something that looks like it, in the trail."""


class ExportUnreadable(RenkeiError, ValueError):
    """The file is not an audit export (says where)."""


#: The failures of what the bus stands on — the broker, the shared state store, the audit
#: store — rather than of the change it is handling: a stage that meets one is retried, never
#: counted toward `poison_after` (bus.stages.dispatch).
INFRASTRUCTURE_ERRORS: tuple[type[RenkeiError], ...] = (BrokerError, StateStoreError, AuditStoreError)

