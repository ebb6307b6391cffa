"""A doorbell between the processes of one embedded broker file (bus/brokers/embedded.py).

A process that commits a publish rings the other broker instances that consume its queues, so
that a consumer in another process leases the new rows at once instead of at its next poll of
the file's data version (`poll_interval`, 50 ms): 1.8 ms p50 from publish to handler between two
processes, against 26.7 ms by the poll (`python -m bench.wake`; bench/README.md, stop 28).

Each instance binds a datagram socket in Linux's abstract namespace, named after its owner id
(a random UUID, so no other process can guess it or have bound it first); nothing is written
to the file system and the name is gone when the process is. A ring is one non-blocking
`sendto` per instance to wake, carrying only the names of the queues that have new work (never
a message, a key or an id); a receiver wakes only its own consumers of those queues. Rings are
a hint, never the guarantee: a ring lost (a receiver's buffer full, an instance in another
network namespace or container, a platform without abstract sockets) costs only latency, since
the data-version poll still wakes every consumer. `[bus] embedded_doorbell = false` turns the
doorbell off, leaving the poll alone — the public path, and its tested fallback.

Anyone on the host's network namespace could send to the socket: a stranger's datagram can
only make this instance look for work it does not have (an unknown queue name wakes nothing),
and at most `_DRAIN` datagrams are read per turn of the event loop.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable, Iterable

import structlog

__all__ = ["EVERY_QUEUE", "Doorbell", "address"]

log = structlog.get_logger(__name__)

#: a ring that wakes every consumer of the receiver (queue names too long for one datagram)
EVERY_QUEUE = "*"
_PREFIX = b"\0renkei-embedded-broker-"
_MAX_PAYLOAD = 2048  # queue names longer than this together: EVERY_QUEUE instead
_DRAIN = 256  # datagrams read per turn of the loop at most


def address(owner: str) -> bytes:
    """The abstract socket name of the broker instance `owner`."""
    return _PREFIX + owner.encode("ascii", "replace")


class Doorbell:
    """The bell of one broker instance: `open()` listens (on the running loop) and calls
    `on_ring(queues)` with the queue names rung; `ring(owners, queues)` rings others."""

    def __init__(self, owner: str, on_ring: Callable[[set[str]], None]) -> None:
        self.owner = owner
        self._on_ring = on_ring
        self._listening: socket.socket | None = None
        self._sending: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: queue → the other instances consuming it: whom `ring_consumers` rings (the broker sets it
        #: from its file's `consumers` table at connect and at each heartbeat)
        self.listeners: dict[str, frozenset[str]] = {}
        #: rings sent, and rings that could not be (an instance gone, a full buffer)
        self.sent = 0
        self.missed = 0

    @property
    def is_open(self) -> bool:
        return self._listening is not None

    def open(self) -> bool:
        """Listen on the running loop. False (and the poll alone) where abstract sockets are not
        to be had: not Linux, or the socket cannot be made."""
        if not sys.platform.startswith("linux"):
            return False
        try:
            listening = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            listening.setblocking(False)
            listening.bind(address(self.owner))
            sending = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sending.setblocking(False)
        except OSError as exc:
            log.warning("embedded broker doorbell unavailable: other processes' work is seen by polling",
                        error=type(exc).__name__)
            return False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(listening.fileno(), self._drain)
        self._listening, self._sending = listening, sending
        return True

    def close(self) -> None:
        listening, sending, self._listening, self._sending = self._listening, self._sending, None, None
        if listening is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(listening.fileno())
            listening.close()
        if sending is not None:
            sending.close()

    def ring_consumers(self, queues: Iterable[str]) -> None:
        """Ring each other instance that consumes some of `queues` (as `listeners` knows them),
        naming only its own ones of them."""
        listeners = self.listeners
        if not listeners:
            return
        rings: dict[str, list[str]] = {}
        for queue in queues:
            for owner in listeners.get(queue, ()):
                rings.setdefault(owner, []).append(queue)
        for owner, theirs in rings.items():
            self.ring((owner,), theirs)

    def ring(self, owners: Iterable[str], queues: Iterable[str]) -> None:
        """Tell each of `owners` that `queues` have new work: one datagram each, never waiting."""
        sending = self._sending
        if sending is None:
            return
        payload = "\n".join(sorted(set(queues))).encode("utf-8")
        if len(payload) > _MAX_PAYLOAD:
            payload = EVERY_QUEUE.encode()
        for owner in owners:
            try:
                sending.sendto(payload, address(owner))
                self.sent += 1
            except OSError:  # gone (its leases are reclaimed elsewhere), or its buffer full: it polls
                self.missed += 1

    def _drain(self) -> None:
        listening = self._listening
        if listening is None:
            return
        queues: set[str] = set()
        for _ in range(_DRAIN):
            try:
                data = listening.recv(_MAX_PAYLOAD + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            queues.update(name for name in data.decode("utf-8", "replace").split("\n") if name)
        if queues:
            self._on_ring(queues)
