"""The pipeline's hooks, filled in with audit events: what each stage reports, recorded.

- `AuditDeliveryEvents` (bus.delivery.DeliveryEvents): delivered, retried, dead_lettered,
  held, released — through an `AuditRecorder`, which writes them in batches; the deliverer
  awaits `written()` before each ack, so concurrent deliveries share one transaction and a
  crash loses no event of an acked message.
- `AuditOperatorEvents` (bus.delivery.dead.OperatorEvents): replayed, discarded, and an
  operator's unmasked view — written at once (a CLI process is short-lived).
"""

from __future__ import annotations

from adapters.base import Receipt
from bus.audit.events import AuditEvent, EventType
from bus.audit.log import AuditLog
from bus.audit.recorder import AuditRecorder
from bus.delivery.dead import OperatorEvents
from bus.delivery.deliverer import DeliveryEvents
from bus.delivery.store import DeadLetter
from bus.envelope import Envelope
from bus.settings import Settings

__all__ = ["AuditDeliveryEvents", "AuditOperatorEvents"]


class AuditDeliveryEvents(DeliveryEvents):
    def __init__(self, recorder: AuditRecorder) -> None:
        self._recorder = recorder

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
