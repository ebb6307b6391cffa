"""The errors of renkei, one root and a shallow tree.

    RenkeiError
    ├── ConfigError            a settings, route or catalog file is wrong (says file:line)
    ├── ValidationFailed       a message was rejected; carries the list of Issues
    ├── StoreUnreadable        a state file exists but cannot be read (damaged, locked, not SQLite)
    ├── BrokerError            the broker refused or lost contact
    │   ├── PublishNotConfirmed    the broker nacked, returned (unroutable) or timed out
    │   └── BrokerUnavailable      cannot connect / connection lost
    └── DeliveryError          flow control from sinks; not a bug, never logged as a failure
        ├── TransientError         retry later (5xx, timeout, connection refused)
        └── PermanentError         dead-letter now (4xx, rejected by the receiver)

Every error a user can cause says what was wrong, where, and what to do.
Messages never carry personal data in plain text (see bus.masking).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bus.validation.issues import Issue

__all__ = [
    "BrokerError",
    "BrokerUnavailable",
    "ConfigError",
    "DeliveryError",
    "PermanentError",
    "PublishNotConfirmed",
    "RenkeiError",
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
    """The destination could not take the message now; retry later."""


class PermanentError(DeliveryError):
    """The destination will never take this message; dead-letter it now."""
