"""The ports: every contract an adapter implements or calls, in one place (httpx's transport is
the model). This module sits at the bottom of the bus: it imports only the envelope, the
validation issues and the errors, never a stage, so adapters depend on it and on nothing above.

- A **sink** delivers one message to a receiving system and returns a `Receipt`, or raises
  `TransientError` (retry later) or `PermanentError` (dead-letter now). Every sink honours
  `message.envelope.idempotency_key`: delivering the same key twice has one effect.
- A **batch sink** (`BatchSink`) also delivers several messages in one exchange
  (`deliver_many`) and answers item by item: a `Receipt`, or the item's own `TransientError`
  / `PermanentError` as a value; a failure of the whole exchange is raised. The deliver stage
  uses it when `batch_size_of(sink) > 1`; every other sink keeps delivering one by one.
- A **source** puts raw messages into the bus through an `Intake` and learns, per message,
  whether it was accepted, a duplicate, or rejected (with the validation issues).

- A **gatekeeper** tells a source who is calling (a bearer token, a broker user) and records
  every refusal; the bus's tenant gate implements it (bus.stages.tenancy.Gate).

A test sink is a plain function: ``FunctionSink(lambda m: Receipt.applied(m))``.

What a source hears for one message is a `Submission`. The intake never lets
`ValidationFailed` escape: an invalid message is a `Submission("rejected", issues=...)`. It
raises `SourceForbidden` (a known source, another municipality's change; audited, not kept)
and `BrokerError` (the broker did not take the message: not accepted, the source may retry).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from bus.envelope import Envelope
from bus.errors import PermanentError, SourceForbidden, TransientError
from bus.validation.issues import Issue

__all__ = [
    "BatchIntake", "BatchSink", "Caller", "FunctionSink", "Gatekeeper", "Intake", "ItemResult", "Outbound",
    "RawMessage", "Receipt", "Sink", "Source", "Submission", "batch_size_of", "prepare_sink",
]


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


#: what a batch sink answers for one item: its receipt, or its own failure (not raised)
ItemResult = Receipt | TransientError | PermanentError


class BatchSink(Sink, Protocol):
    """A sink that also takes several messages in one exchange (an HTTP destination with
    ``batch_size = N``). `deliver_many` takes at most `batch_size` messages, of different
    residents or, for one resident, in 履歴番号 order, and returns one `ItemResult` per message,
    in order; it raises `TransientError` / `PermanentError` when the whole exchange failed
    (every item then shares that fate: a 5xx, a timeout, a 429 is retried as a batch)."""

    batch_size: int

    async def deliver_many(self, messages: Sequence[Outbound]) -> list[ItemResult]: ...


def prepare_sink(sink: Sink) -> None:
    """Let `sink` make now, as its deliverer starts, what it would otherwise make at its first
    delivery (an HTTP client and its library: adapters.transports.httpclient): its `prepare()`,
    when it has one. It opens no connection: a destination that is down does not stop the start."""
    prepare = getattr(sink, "prepare", None)
    if callable(prepare):
        prepare()


def batch_size_of(sink: Sink) -> int:
    """How many messages `sink` takes in one exchange: its `batch_size` when it offers
    `deliver_many`, else 1 (single-message delivery)."""
    size = getattr(sink, "batch_size", 1)
    if not callable(getattr(sink, "deliver_many", None)) or not isinstance(size, int):
        return 1
    return max(1, size)


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


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as a source hands it in (a batch is a sequence of these)."""

    raw: bytes
    content_type: str
    source: str
    kind: str | None = None


class Intake(Protocol):
    """The bus side a source talks to (implemented by bus.stages.intake.IntakeStage)."""

    async def submit(
        self, raw: bytes, *, content_type: str, source: str, kind: str | None = None
    ) -> Submission: ...


@runtime_checkable
class BatchIntake(Intake, Protocol):
    """An intake that also takes a batch in one go (one validation each, one transaction for the
    batch): what a bulk-file source uses when the bus offers it (adapters.sources.ingest)."""

    async def submit_many(self, batch: Sequence[RawMessage]) -> list[Submission]: ...


class Caller(Protocol):
    """Who a gatekeeper found behind a request: a configured source."""

    @property
    def id(self) -> str: ...

    def may_submit_for(self, municipality: str) -> bool: ...


class Gatekeeper(Protocol):
    """Authenticates a source's request and records every refusal (audit event and counter).

    `authenticate_*` return the caller or raise `AuthenticationFailed` (already recorded);
    `forbidden` records a `SourceForbidden` the source then raises or answers."""

    @property
    def enforced(self) -> bool: ...

    def authenticate_token(self, authorization: str | None, *, peer: str | None = None) -> Caller: ...

    def authenticate_user(self, user: str | None, *, channel: str = "amqp", peer: str | None = None) -> Caller: ...

    def forbidden(self, refusal: SourceForbidden, *, kind: str | None = None) -> None: ...


class Source(Protocol):
    """A front door of the bus (HTTP intake, inbox directory, AMQP intake), one method.

    ``async with source.open(intake, gate):`` binds what the source listens on (a port, a
    directory, a broker queue) and starts taking messages; it raises on entry when it cannot
    (so a bus whose source cannot start delivers nothing), and on exit stops taking messages
    and finishes the one it is taking. The bus opens every source it is given (`Bus.start`)."""

    name: str

    def open(self, intake: Intake, gate: Gatekeeper) -> AbstractAsyncContextManager[None]: ...
