"""Delivery that survives failure (DESIGN §5): retries through broker delay tiers, dead
letters an operator works, and per-resident order kept by parking a failing resident.

- `RetryPolicy`: in-process attempts, delay tiers, deadline (`[retry]` in renkei.toml);
- `DeliveryStore`: parked residents, held messages, dead letters (one SQLite file);
(the consumer of a destination's queue is the deliver stage, bus.stages.deliver)
- `DeadLetters`: what `renkei dead` does: list, show, replay, discard.
"""

from bus.delivery.policy import RetryPolicy
from bus.delivery.store import DeadFilter, DeadLetter, DeliveryStore, Held, Parked

__all__ = ["DeadFilter", "DeadLetter", "DeliveryStore", "Held", "Parked", "RetryPolicy"]
