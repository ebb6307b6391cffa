"""The two adapter contracts, one method each (httpx's transport is the model).

- A **sink** delivers one message to a receiving system and returns a `Receipt`, or raises
  `TransientError` (retry later) or `PermanentError` (dead-letter now). Every sink honours
  `message.envelope.idempotency_key`: delivering the same key twice has one effect.
- A **source** puts raw messages into the bus through an `Intake` and learns, per message,
  whether it was accepted, a duplicate, or rejected (with the validation issues).

A test sink is a plain function: ``FunctionSink(lambda m: Receipt.applied(m))``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from bus.envelope import Envelope
from bus.validation.issues import Issue

__all__ = ["FunctionSink", "Intake", "Outbound", "Receipt", "Sink", "Submission"]


@dataclass(frozen=True, slots=True)
class Outbound:
    """A projected message addressed to one destination.

    `record` is the decoded projection (a dict shaped like the target kind's Avro record,
    dates as datetime.date); `xml` is the same record encoded and validated against the
    target kind's XSD. Transports choose which to send.
    """

    envelope: Envelope
    record: dict[str, Any]
    xml: bytes


@dataclass(frozen=True, slots=True)
class Receipt:
    destination: str
    idempotency_key: str
    status: Literal["applied", "duplicate"]
    reference: str | None = None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))

    @classmethod
    def applied(cls, message: Outbound, reference: str | None = None) -> Receipt:
        return cls(message.envelope.destination or "", message.envelope.idempotency_key, "applied", reference)


class Sink(Protocol):
    async def deliver(self, message: Outbound) -> Receipt: ...


class FunctionSink:
    """A sink made of a function (sync or async): for tests and quick adapters."""

    def __init__(self, fn: Callable[[Outbound], Receipt | Awaitable[Receipt]]) -> None:
        self._fn = fn

    async def deliver(self, message: Outbound) -> Receipt:
        result = self._fn(message)
        if isinstance(result, Receipt):
            return result
        return await result


@dataclass(frozen=True, slots=True)
class Submission:
    """What the bus answered a source for one message."""

    status: Literal["accepted", "duplicate", "rejected"]
    message_id: str | None = None
    kind: str | None = None
    issues: tuple[Issue, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message_id": self.message_id,
            "kind": self.kind,
            "issues": [i.to_dict() for i in self.issues],
        }


class Intake(Protocol):
    """The bus side a source talks to (implemented by bus.intake.BusIntake)."""

    async def submit(
        self, raw: bytes, *, content_type: str, source: str, kind: str | None = None
    ) -> Submission: ...
