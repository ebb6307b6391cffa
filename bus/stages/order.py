"""Per-resident order at one stage (DESIGN §5): park, hold, release, dead-letter.

For one resident R and one stage place (a destination, or the route stage):

1. R is *parked* behind a change that is retrying or dead (its *head*). Any other change of R
   that arrives is *held* in the delivery store (durably, before the broker's ack) and does
   not pass; other residents flow.
2. When the head is done (delivered, routed, or resolved by an operator), what is held is
   *released* in 履歴番号 order, each through the stage again, until one fails (it becomes
   R's new head) or none is left: then R is unparked, atomically with a last look for a
   newly held change.
3. A release interrupted by a crash is resumed when the stage starts (`resume`): R's head is
   then a held change (status `releasing`). With a shared store (PostgreSQL, several
   processes per place) the bus also resumes periodically, so the release a killed process
   left is finished by another; a release is *claimed* (the store's `claim`: one process,
   and here one task, at a time per resident), and a resumer goes on only if the resident is
   still `releasing` once it holds the claim.

`ResidentLine` is that logic once; the deliver stage and the route stage both use it, with
their own `attempt` (deliver it, route it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bus.delivery.store import Held, Parked, ParkStatus
from bus.envelope import Envelope
from bus.logs import get_logger
from bus.stages.hooks import StageHooks
from bus.store_protocols import DeliveryStoreProtocol

__all__ = ["Message", "ResidentLine"]

log = get_logger("renkei.order")


@dataclass(frozen=True, slots=True)
class Message:
    """One message at a stage: from the queue, or from the held store."""

    envelope: Envelope
    headers: dict[str, Any]
    body: bytes

    @classmethod
    def of_held(cls, held: Held) -> Message:
        return cls(Envelope.from_headers(held.headers), held.headers, held.body)


Attempt = Callable[[Message], Awaitable[bool]]


class ResidentLine:
    """The parked residents, held changes and dead letters of one stage place (`where`)."""

    def __init__(self, store: DeliveryStoreProtocol, where: str, hooks: StageHooks) -> None:
        self.store = store
        self.where = where
        self._hooks = hooks
        self._claimed: set[str] = set()  # residents a task of this process is releasing

    def _here(self, envelope: Envelope) -> Envelope:
        """`envelope` as reported from this place (a change on the intake queue has no destination yet)."""
        return envelope if envelope.destination is not None else dataclasses.replace(envelope, destination=self.where)

    def parked_among(self, subjects: Sequence[str]) -> dict[str, Parked]:
        """The parked ones of `subjects` (a batch's residents, one query), for `admit`."""
        return self.store.parked_among(self.where, subjects)

    def admit(self, message: Message, known: Mapping[str, Parked] | None = None) -> tuple[bool, Parked | None]:
        """(False, _) when `message` was held behind its resident's head, or is that head and
        already a dead letter (nothing more to do);
        (True, parked) when it may pass — `parked` is its resident's parking when it is the head.
        `known`: the parked residents of the message's batch (`parked_among`), looked up before."""
        envelope = message.envelope
        parked = self.store.parked(self.where, envelope.subject) if known is None else known.get(envelope.subject)
        if parked is not None and parked.head == envelope.message_id and parked.status == "dead":
            # a dead letter already, handed out again (killed after the letter, before the ack):
            # not sent again, not a second letter; an operator's replay parks it "retrying" first
            log.info("a dead letter handed out again: left to the operator", where=self.where,
                     message_id=envelope.message_id)
            return False, parked
        if parked is None or parked.head == envelope.message_id:
            return True, parked
        if self.store.hold(self.where, envelope.subject, envelope.sequence, envelope.message_id,
                           message.headers, message.body):
            self._hooks.held(self._here(envelope))
            return False, parked
        return True, None  # released meanwhile

    def park(self, message: Message, status: ParkStatus) -> None:
        self.store.park(self.where, message.envelope.subject, message.envelope.message_id, status)

    async def dead(self, message: Message, code: str, reason: str, *, attempts: int = 1,
                   first_failed: float | None = None) -> None:
        """Report `message` dead-lettered (its events written), then put it in the dead letters and
        park its resident behind it (one transaction). In that order: a dead letter handed out
        again is not reported again (`admit`), so its event must be in the trail by then; killed
        before the letter, the change is tried again and its event is there twice."""
        envelope = message.envelope
        self._hooks.dead_lettered(self._here(envelope), code, reason)
        await self._hooks.written()
        self.store.add_dead(
            destination=self.where, subject=envelope.subject, municipality=envelope.municipality,
            message_id=envelope.message_id, sequence=envelope.sequence, code=code, reason=reason,
            attempts=attempts, first_failed=time.time() if first_failed is None else first_failed,
            headers=message.headers, body=message.body,
        )

    async def resume(self, attempt: Attempt) -> None:
        """Finish releases a crash interrupted (a resident whose head is a held message); a
        resident another task or process is releasing now is left to it."""
        for parked in self.store.parked_all(self.where, status="releasing"):
            async with self._claim(parked.subject, wait=False) as mine:
                now = self.store.parked(self.where, parked.subject) if mine else None
                if now is not None and now.status == "releasing":
                    await self._release(parked.subject, None, attempt)

    @contextlib.asynccontextmanager
    async def _claim(self, subject: str, *, wait: bool) -> AsyncIterator[bool]:
        """Hold the release of `subject` (yields False, without `wait`, when someone else does)."""
        while subject in self._claimed or not self.store.claim(self.where, subject):
            if not wait:
                yield False
                return
            await asyncio.sleep(0.05)
        self._claimed.add(subject)
        try:
            yield True
        finally:
            self._claimed.discard(subject)
            self.store.unclaim(self.where, subject)

    async def release(self, subject: str, done: str | None, attempt: Attempt) -> None:
        """Pass what is held behind `subject` through `attempt`, in order, until one fails or none
        is left. `done` is the change just done: a held copy of it is dropped, not passed again
        (an operator's release publishes the first held change before it drops it)."""
        async with self._claim(subject, wait=True):
            await self._release(subject, done, attempt)

    async def _release(self, subject: str, done: str | None, attempt: Attempt) -> None:
        while True:
            held = self.store.next_held(self.where, subject)
            if held is None:
                if self.store.unpark_if_drained(self.where, subject):
                    log.info("released", where=self.where, subject=subject)
                    return
                continue  # something was held just now: pass it too
            if held.message_id == done:
                self.store.drop_held(held.id)
                continue
            message = Message.of_held(held)
            self.store.park(self.where, subject, held.message_id, "releasing")
            self._hooks.released(self._here(message.envelope))
            ok = await attempt(message)
            self.store.drop_held(held.id)  # done, or now a retry copy / a dead letter
            if not ok:
                return
            done = held.message_id
