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
- a crash (any exception): requeued until the broker has handed it out `poison_after` times,
  then dead-lettered with `POISON`. The crash is logged by type only (an exception's text
  may quote the message).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bus.brokers.base import Delivery
from bus.envelope import Envelope
from bus.errors import BrokerError, RenkeiError
from bus.logs import get_logger
from bus.stages.hooks import StageHooks
from bus.stages.order import Message, ResidentLine
from bus.stages.outcomes import POISON, Outcome

__all__ = ["Dispatcher", "Requeue", "Stage"]

log = get_logger("renkei.dispatch")


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

    def __init__(self, stage: Stage, hooks: StageHooks, line: ResidentLine, *, poison_after: int) -> None:
        self.stage = stage
        self._hooks = hooks
        self._line = line
        self._poison_after = poison_after

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
                    self._line.dead(Message(Envelope.from_headers(delivery.headers), dict(delivery.headers),
                                            delivery.body), outcome.code, outcome.reason,
                                    attempts=delivery.delivery_count)
        finally:
            await self._hooks.written()
        return outcomes

    async def _outcomes(self, batch: Sequence[Delivery]) -> list[Outcome]:
        try:
            outcomes = await self.stage.handle(batch)
        except Exception as error:
            if len(batch) == 1 or isinstance(error, BrokerError):  # the broker failed them all alike
                return [self._crashed(delivery, error) for delivery in batch]
            # which message crashed it? each on its own (the stages are idempotent: one done
            # before the crash is then a duplicate, or delivered again under its idempotency key)
            return [(await self._outcomes([delivery]))[0] for delivery in batch]
        if len(outcomes) != len(batch):
            raise RuntimeError(f"the {self.stage.name} stage answered {len(outcomes)} outcomes "
                               f"for {len(batch)} messages")
        return outcomes
    def _crashed(self, delivery: Delivery, error: Exception) -> Outcome:
        count = delivery.delivery_count
        log.error("stage crashed", stage=self.stage.name, message_id=delivery.message_id,
                  error=type(error).__name__, crashes=count)
        if count >= self._poison_after:
            return Outcome("dead", POISON, f"the {self.stage.name} stage crashed {count} times "
                                           f"({type(error).__name__})")
        return Outcome("retry", reason=f"the {self.stage.name} stage crashed ({type(error).__name__})")
