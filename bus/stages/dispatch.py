"""The dispatcher: a stage run for the broker, its outcomes settled in one place.

    broker ──Delivery──▶ Dispatcher ──batch──▶ stage.handle ──outcomes──▶ hooks.written() ──▶ ack
                                                   │ raises (a crash)
                                                   └▶ requeue, or after `poison_after` crashes
                                                      a dead letter (D300), then ack

Every stage that consumes a queue (route, deliver) is a `Stage`: a plain async handler that
takes a batch and answers one `Outcome` per message (bus.stages.outcomes). The dispatcher
is the broker's handler (`Broker.consume`); until the brokers hand out batches it passes
batches of one. What the outcomes mean is decided here, once:

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
from bus.errors import RenkeiError
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
    """Runs `stage` as a broker handler; `line` keeps its dead letters and parked residents."""

    def __init__(self, stage: Stage, hooks: StageHooks, line: ResidentLine, *, poison_after: int) -> None:
        self.stage = stage
        self._hooks = hooks
        self._line = line
        self._poison_after = poison_after

    async def __call__(self, delivery: Delivery) -> None:
        try:
            try:
                [outcome] = await self.stage.handle([delivery])
            except Exception as error:
                outcome = self._crashed(delivery, error)
            if outcome.what == "dead":
                self._line.dead(Message(Envelope.from_headers(delivery.headers), dict(delivery.headers),
                                        delivery.body), outcome.code, outcome.reason,
                                attempts=delivery.delivery_count)
        finally:
            await self._hooks.written()
        if outcome.what == "retry":
            raise Requeue(outcome.reason)

    def _crashed(self, delivery: Delivery, error: Exception) -> Outcome:
        count = delivery.delivery_count
        log.error("stage crashed", stage=self.stage.name, message_id=delivery.message_id,
                  error=type(error).__name__, crashes=count)
        if count >= self._poison_after:
            return Outcome("dead", POISON, f"the {self.stage.name} stage crashed {count} times "
                                           f"({type(error).__name__})")
        return Outcome("retry", reason=f"the {self.stage.name} stage crashed ({type(error).__name__})")
