"""The flow-control outcomes of a stage, one set for every stage, settled by the dispatcher.

A stage's handler takes a batch of messages and answers one `Outcome` per message:

    DONE            the stage did its work (or kept the message safely: held, scheduled for a
                    retry, dead-lettered by the stage itself): ack
    DUPLICATE       seen before, nothing to do: ack
    retry_later(r)  not now, and the stage kept nothing: the broker hands it out again
                    (the dispatcher requeues it)
    dead_letter(c, r)  never: the dispatcher puts it in the dead letters with code `c` and
                    parks its resident behind it, then acks

An exception from a handler is a crash (a bug, a poison message): the dispatcher requeues the
message until it has crashed `poison_after` times (the broker's delivery count), then
dead-letters it with `POISON`. The codes are stable (docs/error-codes.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DEADLINE", "DONE", "DUPLICATE", "POISON", "REFUSED", "Outcome", "dead_letter", "retry_later"]

REFUSED = "D100"  # the receiving system refused the message for good (PermanentError)
DEADLINE = "D200"  # still failing past the destination's deadline
POISON = "D300"  # the stage crashed on it `poison_after` times


@dataclass(frozen=True, slots=True)
class Outcome:
    what: Literal["done", "duplicate", "retry", "dead"]
    code: str = ""
    reason: str = ""


DONE = Outcome("done")
DUPLICATE = Outcome("duplicate")


def retry_later(reason: str) -> Outcome:
    return Outcome("retry", reason=reason)


def dead_letter(code: str, reason: str) -> Outcome:
    return Outcome("dead", code, reason)
