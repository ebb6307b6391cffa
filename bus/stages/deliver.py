"""The deliver stage: one destination's queue → its sink, surviving failure (DESIGN §5).

For each message of resident R:

1. R is parked (an earlier change of R is retrying or dead) and this is not the change R
   waits on → the message is *held* in the delivery store and acked. Other residents flow
   (bus.stages.order.ResidentLine, which the route stage uses too).
2. Otherwise deliver, with brief in-process retries (tenacity, jittered exponential) on
   `TransientError`.
3. Delivered → if R was parked behind this message, release R: deliver what is held
   behind it, in 履歴番号 order, until one fails (it becomes R's new head) or none is left
   (R is unparked, atomically with a last look for a newly held message).
4. Still failing transiently → park R behind this message and publish it again with the
   next broker delay tier (10 s, 1 min, … in the settings); ack. Past the destination's
   deadline (counted from the first failure) → dead letter. A destination that said how long
   to wait (`TransientError.retry_after`, an HTTP `Retry-After`) is never tried sooner: an
   in-process retry waits at least that long, and one longer than `IN_PROCESS_MAX` goes to
   the broker at once, delayed by the first tier that long (beyond the last: that many
   whole minutes, so the retries of a tier come due together), within the deadline.
5. `PermanentError` → dead letter at once (code D100); R stays parked until an operator
   replays or discards it (`renkei dead`), which the audit trail records.
Batches (a sink that offers `deliver_many`, bus.ports.BatchSink, with `batch_size` > 1): the
messages of a batch the broker handed out go to the sink in *waves* of at most one change
per resident, the earliest first, so a resident's later change is admitted (1) only once the
fate of the earlier one is known: delivered, or failed and so parked, and then it is held
behind it. Each item's receipt or error is taken as above, item by item: one refused item is
dead-lettered alone, its resident parked behind it, the others delivered; a failure of the
whole request (5xx, timeout, 429) retries the items still failing together, in process
(`attempts`, at least the Retry-After), then each through the delay tiers (4).

6. Anything else is a bug or a poison message: retried like a transient failure (R parked,
   the delay tiers), and dead-lettered (D300) once it has crashed the handler `poison_after`
   times — the same limit and code as the dispatcher's for every stage, counted here in a
   header rather than by the broker: this stage can park R, so it never requeues (on
   RabbitMQ a requeue lets the resident's later changes that the broker has not handed out
   yet overtake it). A failure of the broker itself (publishing the retry copy while a
   quorum queue elects its leader) is no crash: it goes to the dispatcher, which runs the
   batch again in place and never counts it toward `poison_after`.

Crash safety: R is parked before the retry copy is published, and the copy is published
before the original is acked; a message is held (durably) before it is acked. A crash in
between means a redelivery, absorbed by the sink's idempotency key — never a loss, and
never a later change overtaking an earlier one. A release interrupted by a crash is
resumed when the deliverer starts (`resume`), and the head it followed, handed out again
by the broker, is not delivered again (`_release_behind`).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from bus.brokers.base import Broker, Delivery, OutgoingMessage
from bus.catalog import Catalog
from bus.catalog.decode import decode
from bus.delivery.policy import RetryPolicy
from bus.delivery.store import Parked
from bus.envelope import Envelope
from bus.errors import INFRASTRUCTURE_ERRORS, PermanentError, TransientError
from bus.logs import get_logger
from bus.ports import BatchSink, ItemResult, Outbound, Receipt, Sink, batch_size_of
from bus.stages.hooks import StageHooks
from bus.stages.order import Message, ResidentLine
from bus.stages.outcomes import DEADLINE, DONE, POISON, REFUSED, Outcome
from bus.topology import destination_queue

__all__ = ["CRASHES_HEADER", "FIRST_FAILED_HEADER", "RETRY_HEADERS", "TIER_HEADER", "DeliverStage"]

log = get_logger("renkei.delivery")

#: headers a retry copy carries: how many delay tiers it went through, when it first failed, and
#: how often it crashed the handler
TIER_HEADER = "x-renkei-tier"
FIRST_FAILED_HEADER = "x-renkei-first-failed"
CRASHES_HEADER = "x-renkei-crashes"
RETRY_HEADERS = (TIER_HEADER, FIRST_FAILED_HEADER, CRASHES_HEADER)
#: the longest wait an in-process retry may take (seconds); a longer Retry-After goes to the broker
IN_PROCESS_MAX = 5.0


def _asked(error: BaseException | None) -> float:
    """The seconds a transient failure asked to wait (0: it did not say)."""
    return (getattr(error, "retry_after", None) or 0.0) if isinstance(error, TransientError) else 0.0


def _retry_in_process(error: BaseException) -> bool:
    return isinstance(error, TransientError) and _asked(error) <= IN_PROCESS_MAX


def _error_of(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def _after(tries: int) -> RetryCallState:
    """A retry state after `tries` tries (what tenacity's wait functions read)."""
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = tries
    return state


class _Decoded(Outbound):
    """An `Outbound` whose record is decoded from the projection only when a sink reads it: one
    that sends the XML (or only counts) never pays for the parse."""

    __slots__ = ("_catalog", "_record")
    _catalog: Catalog
    _record: dict[str, Any] | None

    def __init__(self, envelope: Envelope, xml: bytes, catalog: Catalog) -> None:
        object.__setattr__(self, "envelope", envelope)
        object.__setattr__(self, "xml", xml)
        object.__setattr__(self, "_catalog", catalog)
        object.__setattr__(self, "_record", None)

    @property
    def record(self) -> dict[str, Any]:
        record: dict[str, Any] | None = self._record
        if record is None:
            _, record = decode(self.xml, self.envelope, self._catalog)
            object.__setattr__(self, "_record", record)
        return record


class DeliverStage:
    """Consumes one destination's queue and hands each message to that destination's sink."""

    name = "deliver"

    def __init__(
        self,
        broker: Broker,
        catalog: Catalog,
        line: ResidentLine,
        sink: Sink,
        *,
        policy: RetryPolicy | None = None,
        hooks: StageHooks | None = None,
    ) -> None:
        self._broker = broker
        self._catalog = catalog
        self.line = line
        self.destination = line.where
        self._sink = sink
        self.policy = policy or RetryPolicy()
        self._hooks = hooks or StageHooks()
        self._queue = destination_queue(self.destination)
        self._backoff = wait_random_exponential(multiplier=self.policy.backoff, max=IN_PROCESS_MAX)
        self.batch_size = batch_size_of(sink)

    async def resume(self) -> None:
        """Finish releases a crash interrupted (a resident whose head is a held message)."""
        try:
            await self.line.resume(self._attempt_or_crash)
        finally:
            await self._hooks.written()

    async def handle(self, batch: Sequence[Delivery]) -> list[Outcome]:
        """Deliver each message (or hold it behind its resident's earlier change). Every outcome
        is DONE: a failure is kept by this stage itself (a retry copy, a dead letter)."""
        messages = [(Message(Envelope.from_headers(d.headers), dict(d.headers), d.body),
                     d.redelivered or d.delivery_count > 1) for d in batch]
        if self.batch_size > 1 and len(messages) > 1:
            await self._many(messages)
            return [DONE] * len(batch)
        known = self.line.parked_among([message.envelope.subject for message, _ in messages])  # one query
        for message, redelivered in messages:
            await self._one(message, known, redelivered=redelivered)
        return [DONE] * len(batch)

    async def _many(self, messages: list[tuple[Message, bool]]) -> None:
        """Deliver `messages` through the batch sink, in waves of one change per resident (the
        parked residents of each wave looked up in one query, after the waves before it)."""
        remaining = messages
        while remaining:
            wave: list[tuple[Message, bool]] = []
            later: list[tuple[Message, bool]] = []
            subjects: set[str] = set()
            for item in remaining:
                subject = item[0].envelope.subject
                (later if subject in subjects else wave).append(item)
                subjects.add(subject)
            remaining = later
            known = self.line.parked_among([message.envelope.subject for message, _ in wave])
            passing: list[tuple[Message, Parked | None]] = []
            for message, redelivered in wave:
                if redelivered and self._done_before(message):
                    continue
                passes, parked = self.line.admit(message, known)
                if passes:
                    passing.append((message, parked))
            for start in range(0, len(passing), self.batch_size):
                chunk = passing[start:start + self.batch_size]
                delivered = await self._attempt_many([message for message, _ in chunk])
                for (message, parked), ok in zip(chunk, delivered, strict=True):
                    if ok and parked is not None:
                        await self._release_behind(message)

    def _done_before(self, message: Message) -> bool:
        if not self.line.store.was_done(self.destination, message.envelope.message_id):
            return False
        log.info("delivered before, and what it held back released: not delivered again",
                 destination=self.destination, message_id=message.envelope.message_id)
        return True

    async def _one(self, message: Message, known: Mapping[str, Parked], *, redelivered: bool = False) -> None:
        if redelivered and self._done_before(message):
            return
        passes, parked = self.line.admit(message, known)
        if not passes:
            return
        delivered = await self._attempt_or_crash(message)
        if delivered and parked is not None:
            await self._release_behind(message)

    async def _release_behind(self, head: Message) -> None:
        """Deliver what is held behind `head`, the resident's head, just delivered (step 3).

        The broker still holds `head` unacked until this handler returns. Killed during the
        release, the bus would on restart finish the release (`resume`) and then get `head`
        again — an earlier change after later ones, which a receiver that applies "latest wins"
        would take as a rollback. So `head` is first noted as done at this destination
        (durably, bus.delivery.store `note_done`), and a redelivered message so noted is acked
        without being delivered again (`_one`). Only heads that hold something back are noted,
        and a note is forgotten after DONE_NOTES_KEPT."""
        self.line.store.note_done(self.destination, head.envelope.message_id)
        await self.line.release(head.envelope.subject, head.envelope.message_id, self._attempt_or_crash)

    async def _attempt_or_crash(self, message: Message) -> bool:
        """`_attempt`, with a crash of the handler (a bug, a poison message) retried through the
        delay tiers — a bug may be transient too (a reconnecting pool, a full disk) — until it
        has crashed `poison_after` times: then it is dead-lettered (D300)."""
        try:
            return await self._attempt(message)
        except INFRASTRUCTURE_ERRORS:  # publishing the retry copy or writing a store failed: not the change's
            raise  # the dispatcher runs the batch again in place (bus.stages.dispatch), uncounted
        except Exception as error:
            return await self._crashed(message, error)

    async def _crashed(self, message: Message, error: Exception) -> bool:
        crashes = int(message.headers.get(CRASHES_HEADER) or 0) + 1
        log.error("delivery crashed", destination=self.destination, message_id=message.envelope.message_id,
                  error=type(error).__name__, crashes=crashes)
        if crashes >= self.policy.poison_after:
            await self._dead(message, POISON, f"the handler crashed {crashes} times ({type(error).__name__})")
        else:
            crashed = Message(message.envelope, {**message.headers, CRASHES_HEADER: crashes}, message.body)
            await self._retry_later(crashed, f"the handler crashed ({type(error).__name__})")
        return False

    async def _attempt_many(self, messages: list[Message]) -> list[bool]:
        """`_attempt` for several messages of different residents, in one exchange with the batch
        sink: each item's outcome taken alone; the items still failing transiently (the whole
        request, or their own receipt said "retry") sent again together in process, then each
        scheduled for a retry through the delay tiers. True for each message delivered."""
        sink: BatchSink = self._sink  # type: ignore[assignment]  # batch_size > 1: it has deliver_many
        done: dict[int, bool] = {}
        pending: list[tuple[int, Message, Outbound]] = [
            (i, message, _Decoded(message.envelope, message.body, self._catalog)) for i, message in enumerate(messages)]
        attempt = 0
        while pending:
            attempt += 1
            for _ in pending:
                self._hooks.attempted(self.destination)
            try:
                answers: Sequence[ItemResult] = await sink.deliver_many([o for _, _, o in pending])
            except (TransientError, PermanentError) as error:
                answers = [error] * len(pending)
            except Exception as error:
                for i, message, _ in pending:
                    done[i] = await self._crashed(message, error)
                break
            again: list[tuple[int, Message, Outbound]] = []
            asked = 0.0
            for (i, message, outbound), answer in zip(pending, answers, strict=True):
                if isinstance(answer, Receipt):
                    self._hooks.delivered(outbound.envelope, answer)
                    done[i] = True
                elif isinstance(answer, TransientError) and _retry_in_process(answer) and \
                        attempt < self.policy.attempts:
                    again.append((i, message, outbound))
                    asked = max(asked, _asked(answer))
                else:
                    done[i] = await self._failed(message, answer)
            if again:
                high = min(IN_PROCESS_MAX, self.policy.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(max(random.uniform(0, high), asked))
            pending = again
        return [done[i] for i in range(len(messages))]

    async def _failed(self, message: Message, error: TransientError | PermanentError) -> bool:
        """An item's failure: dead-lettered (refused for good) or scheduled for a retry."""
        if isinstance(error, PermanentError):
            await self._dead(message, REFUSED, str(error))
        else:
            await self._retry_later(message, str(error), _asked(error))
        return False

    async def _attempt(self, message: Message) -> bool:
        """Deliver `message` now; on failure, schedule its retry or dead-letter it. True when
        it was delivered. Raises only for unexpected errors (bugs)."""
        envelope = message.envelope
        outbound = _Decoded(envelope, message.body, self._catalog)
        try:
            receipt = await self._deliver_with_retries(outbound)
        except PermanentError as error:
            await self._dead(message, REFUSED, str(error))
            return False
        except TransientError as error:
            await self._retry_later(message, str(error), _asked(error))
            return False
        self._hooks.delivered(envelope, receipt)
        return True

    async def _deliver_with_retries(self, outbound: Outbound) -> Receipt:
        self._hooks.attempted(self.destination)
        try:  # the first try without tenacity's machinery: built only on a failure
            return await self._sink.deliver(outbound)
        except Exception as error:
            if not _retry_in_process(error) or self.policy.attempts < 2:
                raise
            pause = self._wait_after(1, error)
        await asyncio.sleep(pause)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retry_in_process),
            stop=stop_after_attempt(self.policy.attempts - 1),
            wait=lambda state: self._wait_after(state.attempt_number + 1, _error_of(state)),
            reraise=True,
        ):
            with attempt:
                self._hooks.attempted(self.destination)
                return await self._sink.deliver(outbound)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    def _wait_after(self, tries: int, error: BaseException | None) -> float:
        """The in-process backoff after `tries` tries, or the wait the destination asked for when longer."""
        return max(self._backoff(_after(tries)), _asked(error))

    async def _retry_later(self, message: Message, reason: str, asked: float = 0.0) -> None:
        envelope, headers = message.envelope, message.headers
        now = time.time()
        first_failed = float(headers.get(FIRST_FAILED_HEADER) or now)
        tier = int(headers.get(TIER_HEADER) or 0)
        if now - first_failed >= self.policy.deadline:
            await self._dead(message, DEADLINE, f"still failing {now - first_failed:.0f} s after the first failure "
                                                f"(deadline {self.policy.deadline:.0f} s): {reason}")
            return
        delay = min(self._delay(tier, asked), max(0.0, first_failed + self.policy.deadline - now))
        self.line.park(message, "retrying")
        retry = {**headers, TIER_HEADER: tier + 1, FIRST_FAILED_HEADER: first_failed}
        await self._broker.publish(self._queue, OutgoingMessage(message.body, envelope.message_id,
                                                                envelope.subject, retry), delay=delay)
        self._hooks.retried(envelope, tier + 1, reason, delay)

    def _delay(self, tier: int, asked: float) -> float:
        """The tier's delay, or, when the destination asked for longer, the first tier at least as
        long (beyond the last tier: the whole minutes that cover it)."""
        delay = self.policy.delay(tier)
        if asked <= delay:
            return delay
        beyond = float(math.ceil(asked)) if asked <= 60 else math.ceil(asked / 60) * 60.0  # a 1 s wait is no minute
        return next((t for t in self.policy.tiers if t >= asked), beyond)

    async def _dead(self, message: Message, code: str, reason: str) -> None:
        headers = message.headers
        clean = Message(message.envelope, {k: v for k, v in headers.items() if k not in RETRY_HEADERS}, message.body)
        await self.line.dead(clean, code, reason, attempts=int(headers.get(TIER_HEADER) or 0) + 1,
                       first_failed=float(headers.get(FIRST_FAILED_HEADER) or time.time()))
