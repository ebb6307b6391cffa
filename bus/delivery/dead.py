"""The dead letters as an operator works them (`renkei dead ...`), on either broker.

    letters = DeadLetters(store, broker, catalog)
    letters.list(DeadFilter(destination="kokuho", code="D100"))
    letters.show(7)                       # the message decoded, personal data masked
    await letters.replay(7, by="ops-sato")
    await letters.discard(7, by="ops-sato", reason="転出 entered twice; kokuho corrected by hand")

Order is kept (DESIGN §5): a dead letter's resident stays parked, its later changes held.
- **replay** publishes the dead message again as the resident's head (to its destination's
  queue; a dead letter of the route stage to the intake queue, bus.topology.stage_queue);
  once it is done, the stage releases what is held behind it, in order.
- **discard** resolves it without delivery; the first held change (if any) becomes the
  head and is published, and the rest follow it in order; with nothing held the resident
  is simply unparked.
Both are recorded (who, why) in the dead-letter row and reported to `events`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bus.brokers.base import Broker, OutgoingMessage
from bus.catalog import Catalog
from bus.catalog.decode import decode
from bus.delivery.store import DeadFilter, DeadLetter
from bus.envelope import Envelope
from bus.errors import DeadLetterNotFound, RenkeiError
from bus.masking import mask_record
from bus.stages.deliver import RETRY_HEADERS
from bus.store_protocols import DeliveryStoreProtocol
from bus.topology import stage_queue

__all__ = ["DeadLetterNotFound", "DeadLetters", "OperatorEvents"]


class OperatorEvents:
    """Hooks for the operator's actions (the audit trail subclasses it)."""

    def replayed(self, letter: DeadLetter, by: str) -> None: ...
    def discarded(self, letter: DeadLetter, by: str, reason: str) -> None: ...
    def shown_unmasked(self, letter: DeadLetter, by: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Shown:
    letter: DeadLetter
    record: Any  # the decoded message, masked unless asked otherwise
    masked: bool


class DeadLetters:
    def __init__(self, store: DeliveryStoreProtocol, broker: Broker, catalog: Catalog,
                 events: OperatorEvents | None = None) -> None:
        self._store = store
        self._broker = broker
        self._catalog = catalog
        self._events = events or OperatorEvents()

    def list(self, where: DeadFilter | None = None, limit: int = 1000) -> list[DeadLetter]:
        return self._store.dead_list(where, limit)

    def show(self, dead_id: int, *, unmasked_by: str | None = None) -> Shown:
        """The letter and its message decoded; masked unless `unmasked_by` (an operator) asks,
        which is itself reported to `events` (the audit trail records who looked)."""
        letter = self._get(dead_id, only_dead=False)
        _, record = decode(letter.body, Envelope.from_headers(letter.headers), self._catalog)
        if unmasked_by is None:
            return Shown(letter, mask_record(record), True)
        self._events.shown_unmasked(letter, unmasked_by)
        return Shown(letter, record, False)

    async def replay(self, dead_id: int, *, by: str) -> DeadLetter:
        letter = self._get(dead_id)
        self._store.park(letter.destination, letter.subject, letter.message_id, "retrying")
        await self._publish(letter.destination, letter.subject, letter.message_id, letter.headers, letter.body)
        if not self._store.resolve_dead(dead_id, "replayed", by, "replayed"):
            raise DeadLetterNotFound(f"dead letter {dead_id} was resolved by someone else meanwhile")
        self._events.replayed(letter, by)
        return letter

    async def discard(self, dead_id: int, *, by: str, reason: str) -> DeadLetter:
        if not reason.strip():
            raise RenkeiError("a discard needs a reason (--reason TEXT): the audit trail keeps it")
        letter = self._get(dead_id)
        if not self._store.resolve_dead(dead_id, "discarded", by, reason):
            raise DeadLetterNotFound(f"dead letter {dead_id} was resolved by someone else meanwhile")
        await self._release(letter.destination, letter.subject)
        self._events.discarded(letter, by, reason)
        return letter

    async def _release(self, destination: str, subject: str) -> None:
        while True:
            held = self._store.next_held(destination, subject)
            if held is None:
                if self._store.unpark_if_drained(destination, subject):
                    return
                continue
            self._store.park(destination, subject, held.message_id, "retrying")
            await self._publish(destination, subject, held.message_id, held.headers, held.body)
            self._store.drop_held(held.id)
            return

    async def _publish(self, destination: str, subject: str, message_id: str, headers: dict[str, Any],
                       body: bytes) -> None:
        fresh = {k: v for k, v in headers.items() if k not in RETRY_HEADERS}
        await self._broker.publish(stage_queue(destination), OutgoingMessage(body, message_id, subject, fresh))

    def _get(self, dead_id: int, *, only_dead: bool = True) -> DeadLetter:
        letter = self._store.dead(dead_id)
        if letter is None:
            raise DeadLetterNotFound(f"no dead letter {dead_id} (renkei dead list shows them)")
        if only_dead and letter.state != "dead":
            raise DeadLetterNotFound(f"dead letter {dead_id} was already {letter.state} by {letter.resolved_by}")
        return letter
