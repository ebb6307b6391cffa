"""Every name the bus makes, in one place: its queues and the files of its state directory.

Queues (on either broker), one owner, so what runs, what `renkei status` reads and what the
AsyncAPI export documents agree:

- `renkei.intake`: every accepted change, as its source sent it, consumed by the route stage
  (`INTAKE_QUEUE`).
- `renkei.dest.<destination>`: one per destination (`destination_queue`). With tenancy a
  route addresses a *system* (`zei`) and the bus publishes to each configured destination of
  it that serves the change's municipality (`renkei.dest.zei-131016`): `route_queues` names
  those, as the router does (bus.tenancy.Tenancy).
- `<queue>.wait`: where a retry waits on RabbitMQ until it is due (`wait_queue`; the embedded
  broker keeps delayed rows in the queue itself). `<queue>.delay.<millis>ms` (`delay_queue`)
  is where retries waited before December 2026: `renkei retry now` still empties them.
- `renkei.submit`: the AMQP front door's default (`SUBMIT_QUEUE`, `[intake] amqp_queue`).
- `renkei.route` (`ROUTE_STAGE`): no queue, the name under which the route stage keeps its
  dead letters; `stage_queue` is where a replayed dead letter goes back to.

Files of a state directory (`StateDir`): `state.sqlite` (seen and routed ids, counters, and the
rejected messages), `delivery.sqlite` (parked, held, dead letters), `broker.sqlite` (the
embedded broker), `audit.sqlite` (the default audit store) and `processes/` (the running bus
processes' reports). `StateDir` opens the stores for the bus and reads their snapshots for
`renkei status`; nothing else joins these names to a directory. With a shared store
(`[state] store`, a PostgreSQL URL: `StateDir(path, store)`) the state and delivery stores
are that database's (bus.state_backends), and the directory keeps only what is this
machine's: the embedded broker, the default audit file and the process reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the stores import nothing of this module; imported where opened
    from bus.delivery.store import DeliverySnapshot
    from bus.state import StateSnapshot
    from bus.store_protocols import DeliveryStoreProtocol, StateStoreProtocol
    from bus.tenancy import Tenancy

__all__ = [
    "DESTINATION_PREFIX", "INTAKE_QUEUE", "ROUTE_STAGE", "SUBMIT_QUEUE", "StateDir", "delay_queue",
    "destination_queue", "queues_of", "route_queues", "stage_queue", "wait_queue",
]

INTAKE_QUEUE = "renkei.intake"
SUBMIT_QUEUE = "renkei.submit"
DESTINATION_PREFIX = "renkei.dest."

#: the name under which the route stage keeps its dead letters (a change that crashed the
#: router `poison_after` times); it is no destination, so no route can name it
ROUTE_STAGE = "renkei.route"


def destination_queue(destination: str) -> str:
    """The queue of one (configured or route-named) destination."""
    return DESTINATION_PREFIX + destination


def stage_queue(destination: str) -> str:
    """The queue a dead letter of `destination` goes back to when it is replayed: the intake
    queue for the route stage's own, the destination's queue otherwise."""
    return INTAKE_QUEUE if destination == ROUTE_STAGE else destination_queue(destination)


def delay_queue(queue: str, delay: float) -> str:
    """The RabbitMQ queue where messages for `queue` waited `delay` seconds before December 2026
    (one per delay, a TTL dead-lettering into `queue`; now `wait_queue`)."""
    return f"{queue}.delay.{max(1, round(delay * 1000))}ms"


def wait_queue(queue: str) -> str:
    """The RabbitMQ queue where retries for `queue` wait until due (bus.brokers.amqp.waiting)."""
    return f"{queue}.wait"


def route_queues(route_destination: str, tenancy: Tenancy | None = None) -> list[str]:
    """The queues a route addressing `route_destination` publishes to: under tenancy, each
    configured destination of that system (`renkei.dest.zei-131016`), else its own queue."""
    names = [route_destination] if tenancy is None else tenancy.addressable([route_destination])
    return [destination_queue(name) for name in names]


def queues_of(destinations: Iterable[str]) -> list[str]:
    """The intake queue and the queues of `destinations`: what a bus declares and status shows."""
    return [INTAKE_QUEUE, *map(destination_queue, destinations)]


@dataclass(frozen=True, slots=True)
class StateDir:
    """The files of one state directory (`[bus] state_dir`), and the shared store if any."""

    path: Path
    #: `[state] store`: a PostgreSQL URL every process shares, or None (the SQLite files here)
    store: str | None = None

    @property
    def shared(self) -> bool:
        return self.store is not None

    @property
    def state_location(self) -> str:
        """Where the state store is, for messages (a shared store's without its password)."""
        from bus.state_backends import location

        return location(self.store) if self.store else str(self.state_file)

    @property
    def delivery_location(self) -> str:
        from bus.state_backends import location

        return location(self.store) if self.store else str(self.delivery_file)

    @property
    def state_file(self) -> Path:
        return self.path / "state.sqlite"

    @property
    def delivery_file(self) -> Path:
        return self.path / "delivery.sqlite"

    @property
    def broker_file(self) -> Path:
        return self.path / "broker.sqlite"

    @property
    def audit_file(self) -> Path:
        return self.path / "audit.sqlite"

    @property
    def processes_dir(self) -> Path:
        return self.path / "processes"

    def open_state(self) -> StateStoreProtocol:
        from bus.state_backends import open_state

        return open_state(self.store, self.state_file)

    def open_delivery(self) -> DeliveryStoreProtocol:
        from bus.state_backends import open_delivery

        return open_delivery(self.store, self.delivery_file)

    def state_snapshot(self) -> StateSnapshot | None:
        """Read-only; None: no state file (no bus has used the store). Raises StoreUnreadable."""
        from bus.state_backends import state_snapshot

        return state_snapshot(self.store, self.state_file)

    def delivery_snapshot(self) -> DeliverySnapshot | None:
        """Read-only; None: no delivery store. Raises StoreUnreadable."""
        from bus.state_backends import delivery_snapshot

        return delivery_snapshot(self.store, self.delivery_file)
