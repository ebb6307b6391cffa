"""The stages' hooks, filled in with audit events: what each stage reports, recorded.

- `AuditHooks` (bus.stages.hooks.StageHooks): every life event of a message at the gate, the
  intake, the route and the deliver stage — through an `AuditRecorder`, which writes them in
  batches; each stage awaits `written()` before its ack or its answer, so concurrent messages
  share one transaction and a crash loses no event of an acked or answered message.
- `AuditOperatorEvents` (bus.delivery.dead.OperatorEvents): replayed, discarded, and an
  operator's unmasked view — written at once (a CLI process is short-lived).
"""

from __future__ import annotations

from collections.abc import Sequence

from bus.audit import fanout
from bus.audit.events import AuditEvent, EventType
from bus.audit.guard import claimed
from bus.audit.log import AuditLog
from bus.audit.recorder import AuditRecorder
from bus.delivery.dead import OperatorEvents
from bus.delivery.store import DeadLetter
from bus.envelope import Envelope
from bus.errors import AUTH_FAILED, FORBIDDEN, SourceForbidden
from bus.ports import Receipt
from bus.settings import Settings
from bus.stages.hooks import StageHooks
from bus.tenancy import CROSS_TENANT
from bus.validation.issues import Issue

__all__ = ["AuditHooks", "AuditOperatorEvents"]


def _token(text: str) -> str:
    """`text` as an audit identifier (letters, digits and . : / @ + - _ only)."""
    return "".join(c if c.isalnum() or c in ".:/@+-_" else "_" for c in text)[:200]


class AuditHooks(StageHooks):
    def __init__(self, recorder: AuditRecorder) -> None:
        self._recorder = recorder

    def auth_failed(self, channel: str, reason: str, peer: str | None) -> None:
        actor = f"{channel}:{peer}" if peer else channel
        self._recorder.emit(AuditEvent(EventType.AUTH_FAILED, actor=_token(actor), codes=(AUTH_FAILED,),
                                       reason=reason))

    def forbidden(self, refusal: SourceForbidden, kind: str | None) -> None:
        self._recorder.emit(AuditEvent(EventType.FORBIDDEN, source=claimed("source", refusal.source),
                                       municipality=refusal.municipality, kind=claimed("kind", kind),
                                       codes=(FORBIDDEN,), reason=str(refusal)))

    def received(self, envelope: Envelope) -> None:
        self._recorder.event(EventType.RECEIVED, envelope)

    def accepted(self, envelope: Envelope) -> None:
        self._recorder.event(EventType.ACCEPTED, envelope)

    def duplicate(self, envelope: Envelope, accepted_as: str) -> None:
        self._recorder.event(EventType.DUPLICATE, envelope)

    def rejected(self, source: str, kind: str | None, issues: Sequence[Issue], rejected_id: int) -> None:
        # no envelope: an invalid message may have no identity at all; the kind and source are
        # what the sender claimed, kept only when they are identifiers (else the rejection says so)
        kept_kind, kept_source = claimed("kind", kind), claimed("source", source)
        dropped = [f"the {name} given is not an identifier (not recorded)"
                   for name, given, kept in (("kind", kind, kept_kind), ("source", source, kept_source))
                   if given is not None and kept is None]
        self._recorder.emit(AuditEvent(EventType.REJECTED, source=kept_source, kind=kept_kind,
                                       codes=tuple(sorted({i.code for i in issues})),
                                       receipt=f"rejected:{rejected_id}", reason="; ".join(dropped) or None))

    def routed(self, envelopes: Sequence[Envelope]) -> None:
        if self._recorder.join_routed:  # one record for the change ([audit] routed_records)
            for event in fanout.routed(envelopes):
                self._recorder.emit(event)
        else:
            for envelope in envelopes:
                self._recorder.event(EventType.ROUTED, envelope)

    def refused(self, envelope: Envelope, reason: str) -> None:
        self._recorder.event(EventType.REFUSED, envelope, codes=[CROSS_TENANT], reason=reason)

    def delivered(self, envelope: Envelope, receipt: Receipt) -> None:
        self._recorder.event(EventType.DELIVERED, envelope, receipt=receipt.reference or receipt.status)

    def retried(self, envelope: Envelope, attempt: int, reason: str, delay: float) -> None:
        self._recorder.event(EventType.RETRIED, envelope, attempt=attempt, reason=f"{reason} (next in {delay:g} s)")

    def dead_lettered(self, envelope: Envelope, code: str, reason: str) -> None:
        self._recorder.event(EventType.DEAD_LETTERED, envelope, codes=[code], reason=reason)

    def held(self, envelope: Envelope) -> None:
        self._recorder.event(EventType.HELD, envelope)

    def released(self, envelope: Envelope) -> None:
        self._recorder.event(EventType.RELEASED, envelope)

    async def written(self) -> None:
        await self._recorder.flush()


class AuditOperatorEvents(OperatorEvents):
    def __init__(self, log: AuditLog) -> None:
        self._log = log

    @classmethod
    def open(cls, settings: Settings) -> AuditOperatorEvents:
        return cls(AuditLog.open(settings))

    def replayed(self, letter: DeadLetter, by: str) -> None:
        self._record(EventType.REPLAYED, letter, actor=by, reason=f"replay of dead letter {letter.id}")

    def discarded(self, letter: DeadLetter, by: str, reason: str) -> None:
        self._record(EventType.DISCARDED, letter, actor=by, reason=reason)

    def shown_unmasked(self, letter: DeadLetter, by: str) -> None:
        self._record(EventType.VIEWED_UNMASKED, letter, actor=by, reason=f"dead letter {letter.id} shown unmasked")

    def _record(self, event: EventType, letter: DeadLetter, **fields: object) -> None:
        self._log.append([AuditEvent.of(event, Envelope.from_headers(letter.headers), codes=[letter.code], **fields)])
