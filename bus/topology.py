"""The names of the bus's queues: one owner, so what runs, what `renkei status` reads and what
the AsyncAPI export documents agree (under tenancy too: a destination's name is already the
tenant's, e.g. `zei-131016`).

    renkei.intake               every accepted change, as its source sent it
    renkei.dest.<destination>   the projections one destination receives
"""

from __future__ import annotations

__all__ = ["INTAKE_QUEUE", "ROUTE_STAGE", "destination_queue", "stage_queue"]

INTAKE_QUEUE = "renkei.intake"

#: the name under which the route stage keeps its dead letters (a change that crashed the
#: router `poison_after` times); it is no destination, so no route can name it
ROUTE_STAGE = "renkei.route"


def destination_queue(destination: str) -> str:
    """The queue of one destination (a tenant's destination name under tenancy)."""
    return f"renkei.dest.{destination}"


def stage_queue(destination: str) -> str:
    """The queue a dead letter of `destination` goes back to when it is replayed: the intake
    queue for the route stage's own, the destination's queue otherwise."""
    return INTAKE_QUEUE if destination == ROUTE_STAGE else destination_queue(destination)
