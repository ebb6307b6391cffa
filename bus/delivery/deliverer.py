"""The delivery stage: one destination's queue → its sink, surviving failure (DESIGN §5).

For each message of resident R:

1. R is parked (an earlier change of R is retrying or dead) and this is not the change R
   waits on → the message is *held* in the delivery store and acked. Other residents flow.
2. Otherwise deliver, with brief in-process retries (tenacity, jittered exponential) on
   `TransientError`.
3. Delivered → if R was parked behind this message, release R: deliver what is held
   behind it, in 履歴番号 order, until one fails (it becomes R's new head) or none is left
   (R is unparked, atomically with a last look for a newly held message).
4. Still failing transiently → park R behind this message and publish it again with the
   next broker delay tier (10 s, 1 min, … in the settings); ack. Past the destination's
   deadline (counted from the first failure) → dead letter.
5. `PermanentError` → dead letter at once (code D100); R stays parked until an operator
   replays or discards it (`renkei dead`), which the audit trail records.
6. Anything else is a bug or a poison message: retried like a transient failure (R parked,
   the delay tiers), and dead-lettered (D300) once it has crashed the handler `poison_after`
   times. Never requeued: on RabbitMQ a requeue lets the resident's later changes that the
   broker has not handed out yet overtake it.

Crash safety: R is parked before the retry copy is published, and the copy is published
before the original is acked; a message is held (durably) before it is acked. A crash in
between means a redelivery, absorbed by the sink's idempotency key — never a loss, and
never a later change overtaking an earlier one. A release interrupted by a crash is
resumed when the deliverer starts (`resume`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from adapters.base import Outbound, Receipt, Sink
from bus.brokers.base import Broker, Delivery, OutgoingMessage
from bus.catalog import Catalog
from bus.delivery.policy import RetryPolicy
from bus.delivery.store import DeliveryStore, Held
from bus.envelope import Envelope
from bus.errors import PermanentError, TransientError
from bus.logs import get_logger
from bus.pipeline import decode
from bus.state import StateStore
from bus.topology import destination_queue

__all__ = ["FIRST_FAILED_HEADER", "TIER_HEADER", "Deliverer", "DeliveryEvents"]

log = get_logger("renkei.delivery")

#: headers a retry copy carries: how many delay tiers it went through, when it first failed, and
#: how often it crashed the handler
TIER_HEADER = "x-renkei-tier"
FIRST_FAILED_HEADER = "x-renkei-first-failed"
CRASHES_HEADER = "x-renkei-crashes"

# stable codes of the dead letters (docs/error-codes.md)
REFUSED, DEADLINE, POISON = "D100", "D200", "D300"


class DeliveryEvents:
    """Hooks for what happens to a message here (the audit trail subclasses it); they do
    nothing unless overridden. The reports must not raise; `written` raises when the trail
    cannot keep them (bus.audit.AuditStoreError), and the message is then not acked."""

    def delivered(self, envelope: Envelope, receipt: Receipt) -> None: ...
    def retried(self, envelope: Envelope, attempt: int, reason: str, delay: float) -> None: ...
    def dead_lettered(self, envelope: Envelope, code: str, reason: str) -> None: ...
    def held(self, envelope: Envelope) -> None: ...
    def released(self, envelope: Envelope) -> None: ...

    async def written(self) -> None:
        """Return when every event reported so far is kept (the deliverer awaits it before the ack)."""


@dataclass(frozen=True, slots=True)
class _Message:
    """One message to deliver: from the queue, or from the held store."""

    envelope: Envelope
    headers: dict[str, Any]
    body: bytes


class Deliverer:
    """Consumes one destination's queue and hands each message to that destination's sink."""

    def __init__(
        self,
        broker: Broker,
        catalog: Catalog,
        state: StateStore,
        store: DeliveryStore,
        destination: str,
        sink: Sink,
        *,
        policy: RetryPolicy | None = None,
        events: DeliveryEvents | None = None,
    ) -> None:
        self._broker = broker
        self._catalog = catalog
        self._state = state
        self._store = store
        self.destination = destination
        self._sink = sink
        self.policy = policy or RetryPolicy()
        self._events = events or DeliveryEvents()
        self._queue = destination_queue(destination)

    async def resume(self) -> None:
        """Finish releases a crash interrupted (a resident whose head is a held message)."""
        for parked in self._store.parked_all(self.destination, status="releasing"):
            await self._release(parked.subject, delivered=None)
        await self._events.written()

    async def handle(self, delivery: Delivery) -> None:
        """Deliver one message (or hold it behind its resident's earlier change); its audit
        events are in the trail before this returns and the broker acks it."""
        try:
            await self._handle(delivery)
        finally:
            await self._events.written()

    async def _handle(self, delivery: Delivery) -> None:
        message = _Message(Envelope.from_headers(delivery.headers), dict(delivery.headers), delivery.body)
        envelope = message.envelope
        parked = self._store.parked(self.destination, envelope.subject)
        if parked is not None and parked.head != envelope.message_id:
            if self._store.hold(self.destination, envelope.subject, envelope.sequence, envelope.message_id,
                                message.headers, message.body):
                self._state.count("destination", self.destination, "held")
                self._events.held(envelope)
                log.info("held behind an earlier change", destination=self.destination,
                         message_id=envelope.message_id, subject=envelope.subject)
                return
            parked = None  # released meanwhile
        delivered = await self._attempt_or_crash(message)
        if delivered and parked is not None:
            await self._release(envelope.subject, envelope.message_id)

    async def _attempt_or_crash(self, message: _Message) -> bool:
        """`_attempt`, with a crash of the handler (a bug, a poison message) retried through the
        delay tiers — a bug may be transient too (a reconnecting pool, a full disk) — until it
        has crashed `poison_after` times: then it is dead-lettered (D300)."""
        try:
            return await self._attempt(message)
        except Exception as error:
            crashes = int(message.headers.get(CRASHES_HEADER) or 0) + 1
            log.error("delivery crashed", destination=self.destination, message_id=message.envelope.message_id,
                      error=type(error).__name__, crashes=crashes)
            if crashes >= self.policy.poison_after:
                await self._dead(message, POISON, f"the handler crashed {crashes} times ({type(error).__name__})")
            else:
                crashed = _Message(message.envelope, {**message.headers, CRASHES_HEADER: crashes}, message.body)
                await self._retry_later(crashed, f"the handler crashed ({type(error).__name__})")
            return False

    async def _attempt(self, message: _Message) -> bool:
        """Deliver `message` now; on failure, schedule its retry or dead-letter it. True when
        it was delivered. Raises only for unexpected errors (bugs)."""
        envelope = message.envelope
        _, record = decode(message.body, envelope, self._catalog)
        outbound = Outbound(envelope, record, message.body)
        try:
            receipt = await self._deliver_with_retries(outbound)
        except PermanentError as error:
            await self._dead(message, REFUSED, str(error))
            return False
        except TransientError as error:
            await self._retry_later(message, str(error))
            return False
        self._state.count("destination", self.destination, receipt.status)
        self._events.delivered(envelope, receipt)
        log.debug("delivered", destination=self.destination, message_id=envelope.message_id, status=receipt.status)
        return True

    async def _deliver_with_retries(self, outbound: Outbound) -> Receipt:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.policy.attempts),
            wait=wait_random_exponential(multiplier=self.policy.backoff, max=5.0),
            reraise=True,
        ):
            with attempt:
                self._state.count("destination", self.destination, "attempts")
                return await self._sink.deliver(outbound)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def _retry_later(self, message: _Message, reason: str) -> None:
        envelope, headers = message.envelope, message.headers
        now = time.time()
        first_failed = float(headers.get(FIRST_FAILED_HEADER) or now)
        tier = int(headers.get(TIER_HEADER) or 0)
        if now - first_failed >= self.policy.deadline:
            await self._dead(message, DEADLINE, f"still failing {now - first_failed:.0f} s after the first failure "
                                                f"(deadline {self.policy.deadline:.0f} s): {reason}")
            return
        delay = min(self.policy.delay(tier), max(0.0, first_failed + self.policy.deadline - now))
        self._store.park(self.destination, envelope.subject, envelope.message_id, "retrying")
        retry = {**headers, TIER_HEADER: tier + 1, FIRST_FAILED_HEADER: first_failed}
        await self._broker.publish(self._queue, OutgoingMessage(message.body, envelope.message_id,
                                                                envelope.subject, retry), delay=delay)
        self._state.count("destination", self.destination, "retried")
        self._events.retried(envelope, tier + 1, reason, delay)
        log.warning("delivery failed; retrying later", destination=self.destination,
                    message_id=envelope.message_id, tier=tier + 1, delay=delay, reason=reason)

    async def _dead(self, message: _Message, code: str, reason: str) -> None:
        envelope, headers = message.envelope, message.headers
        first_failed = float(headers.get(FIRST_FAILED_HEADER) or time.time())
        self._store.add_dead(
            destination=self.destination, subject=envelope.subject, municipality=envelope.municipality,
            message_id=envelope.message_id, sequence=envelope.sequence, code=code, reason=reason,
            attempts=int(headers.get(TIER_HEADER) or 0) + 1, first_failed=first_failed,
            headers={k: v for k, v in headers.items() if k not in (TIER_HEADER, FIRST_FAILED_HEADER, CRASHES_HEADER)},
            body=message.body,
        )
        self._state.count("destination", self.destination, "dead")
        self._events.dead_lettered(envelope, code, reason)
        log.warning("dead-lettered", destination=self.destination, message_id=envelope.message_id,
                    code=code, reason=reason)

    async def _release(self, subject: str, delivered: str | None) -> None:
        """Deliver what is held behind `subject`, in order, until one fails or none is left.
        `delivered` is the change just delivered: a held copy of it is dropped, not sent again
        (an operator's release publishes the first held change before it drops it)."""
        while True:
            held = self._store.next_held(self.destination, subject)
            if held is None:
                if self._store.unpark_if_drained(self.destination, subject):
                    log.info("released", destination=self.destination, subject=subject)
                    return
                continue  # something was held just now: deliver it too
            if held.message_id == delivered:
                self._store.drop_held(held.id)
                continue
            message = self._held_message(held)
            self._store.park(self.destination, subject, held.message_id, "releasing")
            self._events.released(message.envelope)
            ok = await self._attempt_or_crash(message)
            self._store.drop_held(held.id)  # delivered, or now a retry copy / a dead letter
            if not ok:
                return
            delivered = held.message_id

    @staticmethod
    def _held_message(held: Held) -> _Message:
        return _Message(Envelope.from_headers(held.headers), held.headers, held.body)
