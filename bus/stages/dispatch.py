"""The dispatcher: a stage run for the broker, its outcomes settled in one place.

    broker ──Delivery──▶ Dispatcher ──batch──▶ stage.handle ──outcomes──▶ hooks.written() ──▶ ack
                                                   │ raises (a crash)
                                                   └▶ requeue, or after `poison_after` crashes
                                                      a dead letter (D300), then ack

Every stage that consumes a queue (route, deliver) is a `Stage`: a plain async handler that
takes a batch and answers one `Outcome` per message (bus.stages.outcomes). The dispatcher
is the broker's handler (`Broker.consume_batches`): a batch of up to `[bus] batch_size`
deliveries, at most one per resident (the broker's key), one `written()` and one settle for
the batch. A batch that crashes the stage is run again message by message, to find which.
What the outcomes mean is decided here, once:

- DONE, DUPLICATE: the message is acked, after the hooks have kept every event reported
  (`written`: audit before the ack);
- retry_later: the message goes back to the broker (the handler raises `Requeue`);
- dead_letter(code): it is put in the stage's dead letters, its resident parked behind it
  (bus.stages.order.ResidentLine), then acked;
- a crash (any exception): requeued until it has crashed the stage `poison_after` times,
  then dead-lettered with `POISON`. The crash is logged by type only (an exception's text
  may quote the message).

A failure of the broker is not a crash (issue 15): a `BrokerError` out of the stage (a
publish not confirmed while a quorum queue elects its leader, a lost connection) says
nothing about the change; nor does a failure of the shared state store or the audit store
(`StateStoreError`, `AuditStoreError`: PostgreSQL restarting) — `bus.errors.INFRASTRUCTURE_ERRORS`.
The batch is run again in place, with backoff, for up to
`broker_retry_for` seconds: its messages stay in hand, so the resident's later changes wait
behind them and nothing is requeued or counted. Still failing after that, the batch is
requeued (so a stopping consumer is not held for ever) and the requeue is noted as the
broker's: the crash count is the broker's delivery count less the requeues the broker
caused (`_outages`, this process's memory: after a restart they count again, which only
brings a later real crash closer to the limit, never loses a change).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_exponential

from bus.brokers.base import Delivery
from bus.envelope import Envelope
from bus.errors import INFRASTRUCTURE_ERRORS, RenkeiError
from bus.logs import get_logger
from bus.stages.hooks import StageHooks
from bus.stages.order import Message, ResidentLine
from bus.stages.outcomes import POISON, Outcome

__all__ = ["Dispatcher", "Requeue", "Stage"]

log = get_logger("renkei.dispatch")

#: the most messages whose broker-caused requeues are remembered (the oldest forgotten first)
OUTAGES_KEPT = 10_000


class Stage(Protocol):
    name: str

    async def handle(self, batch: Sequence[Delivery]) -> list[Outcome]: ...


class Requeue(RenkeiError):
    """Flow control: give the message back to the broker (a retry_later outcome, a crash
    below the poison limit). The broker's consumer requeues on any exception."""


class Dispatcher:
    """Runs `stage` as a broker handler; `line` keeps its dead letters and parked residents.

    `handle` is the batch handler (`Broker.consume_batches`): one `written()` and one settle
    per batch. Calling the dispatcher with one delivery (`Broker.consume`) is the same with a
    batch of one, a requeue raising `Requeue`."""

    def __init__(self, stage: Stage, hooks: StageHooks, line: ResidentLine, *, poison_after: int,
                 broker_retry_for: float = 60.0, broker_backoff: float = 0.1) -> None:
        self.stage = stage
        self._hooks = hooks
        self._line = line
        self._poison_after = poison_after
        self._broker_retry_for = broker_retry_for
        self._broker_backoff = broker_backoff
        self._outages: dict[str, int] = {}  # message id → its requeues the broker caused

    async def __call__(self, delivery: Delivery) -> None:
        [outcome] = await self._settled([delivery])
        if outcome.what == "retry":
            raise Requeue(outcome.reason)

    async def handle(self, batch: Sequence[Delivery]) -> list[bool]:
        """One answer per delivery: True to ack it, False to requeue it."""
        return [outcome.what != "retry" for outcome in await self._settled(batch)]

    async def _settled(self, batch: Sequence[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:
            outcomes = await self._outcomes(batch)
            for delivery, outcome in zip(batch, outcomes, strict=True):
                if outcome.what == "dead":
                    await self._line.dead(Message(Envelope.from_headers(delivery.headers), dict(delivery.headers),
                                                  delivery.body), outcome.code, outcome.reason,
                                          attempts=delivery.delivery_count)
                if outcome.what != "retry" and self._outages:
                    self._outages.pop(delivery.message_id, None)
        finally:
            await self._hooks.written()
        return outcomes

    async def _outcomes(self, batch: Sequence[Delivery]) -> list[Outcome]:
        try:
            outcomes = await self._handled(batch)
        except INFRASTRUCTURE_ERRORS as error:  # the broker or a store, still failing: requeued, not counted
            return [self._requeued_for_broker(delivery, error) for delivery in batch]
        except Exception as error:
            if len(batch) == 1:
                return [self._crashed(batch[0], error)]
            # which message crashed it? each on its own (the stages are idempotent: one done
            # before the crash is then a duplicate, or delivered again under its idempotency key)
            return [(await self._outcomes([delivery]))[0] for delivery in batch]
        if len(outcomes) != len(batch):
            raise RuntimeError(f"the {self.stage.name} stage answered {len(outcomes)} outcomes "
                               f"for {len(batch)} messages")
        return outcomes

    async def _handled(self, batch: Sequence[Delivery]) -> list[Outcome]:
        """The stage's outcomes; a broker failure retried in place (backoff, `broker_retry_for`)."""
        try:  # the first try without tenacity's machinery: built only on a failure
            return await self.stage.handle(batch)
        except INFRASTRUCTURE_ERRORS as error:  # its text is renkei's own: names and ids, never a record
            log.warning("the broker failed the stage; retried in place", stage=self.stage.name,
                        error=type(error).__name__, reason=str(error), messages=len(batch))

        def again(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            log.warning("the broker failed the stage again; retried in place", stage=self.stage.name,
                        error=type(error).__name__, reason=str(error), tries=state.attempt_number + 1)

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(INFRASTRUCTURE_ERRORS),
            stop=stop_after_delay(self._broker_retry_for),
            wait=wait_exponential(multiplier=self._broker_backoff, max=5.0),
            before_sleep=again,
            reraise=True,
        ):
            with attempt:
                return await self.stage.handle(batch)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    def _requeued_for_broker(self, delivery: Delivery, error: Exception) -> Outcome:
        outages = self._outages
        outages[delivery.message_id] = outages.pop(delivery.message_id, 0) + 1
        if len(outages) > OUTAGES_KEPT:
            del outages[next(iter(outages))]
        log.warning("the broker is still failing; requeued, not counted as a crash", stage=self.stage.name,
                    message_id=delivery.message_id, error=type(error).__name__)
        return Outcome("retry", reason=f"the broker failed the {self.stage.name} stage ({type(error).__name__})")

    def _crashed(self, delivery: Delivery, error: Exception) -> Outcome:
        count = max(1, delivery.delivery_count - self._outages.get(delivery.message_id, 0))
        log.error("stage crashed", stage=self.stage.name, message_id=delivery.message_id,
                  error=type(error).__name__, crashes=count)
        if count >= self._poison_after:
            return Outcome("dead", POISON, f"the {self.stage.name} stage crashed {count} times "
                                           f"({type(error).__name__})")
        return Outcome("retry", reason=f"the {self.stage.name} stage crashed ({type(error).__name__})")
