"""The embedded broker: durable queues in one local SQLite file (WAL), no server to run.

Each queue is a set of rows in `messages`, in publish order (rowid). A row is *waiting*
(an earlier row of its key exists), *ready* (the head of its key) or *leased* (handed to a
consumer of one broker instance, the lease owner). Only heads are ever leased, so a key's
next message is not handed out — to any consumer, in any process — while its predecessor
is unsettled. Ack deletes the row and makes the key's next row ready; requeue makes the
row ready again; the delivery count rises at each lease.

Crash safety: every broker instance registers an owner row (pid, pid namespace, process
start time, its own `lease_timeout`) and refreshes its heartbeat. Leases of an owner whose
process is gone (same pid namespace, no such pid, a zombie, or a reused pid — checked at
connect and at every heartbeat, so a restart after `kill -9` gets them back at once) or
whose heartbeat is older than its lease timeout (a frozen process, another container) go
back to ready. A settle carries the lease (owner + delivery count) and does nothing when
the lease was taken back meanwhile: the message is then delivered again, never lost.
Leases are not timed per message: a live, beating owner keeps them however long its
handler runs.

Durability (why FULL only for publishes): the file is in WAL mode. A transaction that
holds a publish commits with `synchronous=FULL` — the WAL is fsync'd before `publish`
returns, so "accepted" survives a power cut, as a quorum queue's fsync-before-confirm does.
Leases, acks, requeues and heartbeats commit with `synchronous=NORMAL`: they survive a crash
of the process (the WAL is in the page cache) and only a power cut can undo them, which
means a redelivery — allowed by at-least-once and absorbed by idempotent sinks.
`sync="normal"` (`[bus] embedded_sync = "normal"`) commits publishes with NORMAL too: still
nothing lost on kill -9 of the bus (DESIGN §5 "Crashes"), but a power cut or an OS crash may
lose the last publishes after their source was told "accepted" (and, since the state file is
not synced either, a change marked routed whose projections were lost). The default ("full")
keeps "accepted means durable" across a power cut; "normal" is for a bus whose sources can
send again (a bulk file read again, a test, a benchmark of CPU).

Throughput: one thread owns the connection and runs the jobs in batches, one transaction per
batch (bus.groupcommit): concurrent publishes, leases and settles share one commit and one
fsync. Consumers lease up to `prefetch` rows per query and otherwise sleep until woken, never
polling the queue: a local publish or settle wakes its queue's consumers at once, a delayed
publish wakes them when it comes due, another process's publish rings them (its doorbell, a
datagram naming the queues: bus/brokers/doorbell.py; 1.8 ms p50 from publish to handler between
two processes, against 26.7 ms by the poll alone), and what a ring misses is seen through
`PRAGMA data_version` (it changes when another connection commits), read every `poll_interval`
— one read, outside any transaction, for the whole broker, however many queues and whatever
their backlog (a lease query per queue every 50 ms took the store's write lock about 260
times a second on an idle `renkei run`). Each heartbeat wakes every consumer once: leases
reclaimed from a dead process, and another process's delayed publishes come due.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
import structlog

from bus.brokers import embedded_store as store
from bus.brokers.base import Broker, BrokerDescription, Delivery, OutgoingMessage, QueueStats
from bus.brokers.doorbell import EVERY_QUEUE, Doorbell
from bus.brokers.embedded_worker import Worker, mapped
from bus.errors import BrokerError, BrokerUnavailable, PublishNotConfirmed

__all__ = ["EmbeddedBroker"]

log = structlog.get_logger(__name__)
T = TypeVar("T")


class EmbeddedBroker(Broker):
    """Durable queues in the SQLite file at `path` (created if missing)."""

    name = "embedded"
    _holds_keys = True

    def __init__(
        self,
        path: Path | str,
        *,
        lease_timeout: float = 30.0,
        heartbeat_interval: float = 2.0,
        poll_interval: float = 0.05,
        sync: Literal["full", "normal"] = "full",
        inline_writes: bool = False,
        doorbell: bool = True,
    ) -> None:
        if lease_timeout < 3 * heartbeat_interval:
            raise ValueError(f"lease_timeout ({lease_timeout} s) must be at least 3 heartbeat intervals "
                             f"({heartbeat_interval} s): a live broker would look dead")
        self.path = Path(path)
        self.lease_timeout = lease_timeout
        self.heartbeat_interval = heartbeat_interval
        self.poll_interval = poll_interval
        if sync not in ("full", "normal"):
            raise ValueError(f"sync must be 'full' or 'normal', got {sync!r}")
        self.sync = sync
        #: transactions on the event loop when the file's writer lock is free ([bus] inline_writes;
        #: bus.brokers.embedded_worker.Worker._commit), else on the worker's thread
        self.inline_writes = inline_writes
        #: ring the other processes' consumers of what this one publishes ([bus] embedded_doorbell;
        #: bus/brokers/doorbell.py), rather than leave them to the data-version poll alone
        self.doorbell = doorbell
        self.owner = uuid.uuid4().hex
        self._bell: Doorbell | None = None
        self._db: Worker | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._declared: set[str] = set()
        self._subscriptions: dict[str, set[_Subscription]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = await asyncio.to_thread(Worker, self.path, self.sync == "full", self.inline_writes)
        except sqlite3.Error as exc:
            raise mapped(exc) from exc
        me = store.Process.current()
        await self._run(lambda c: store.register(c, self.owner, me, self.lease_timeout))
        await self._run(lambda c: store.reclaim(c, self.owner, me))
        if self.doorbell:
            bell = Doorbell(self.owner, self._rung)
            self._bell = bell if bell.open() else None
            await self._learn_listeners()
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat(me))
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        if self._db is None:
            return
        for task in (self._heartbeat, self._watcher):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for subscriptions in list(self._subscriptions.values()):
            for sub in list(subscriptions):
                await sub.stop(wait_settled=False)
        if self._bell is not None:
            self._bell.close()
            self._bell = None
        owner = self.owner
        try:
            await self._run(lambda c: store.unregister(c, owner))
        finally:
            db, self._db = self._db, None
            await db.aclose()

    async def _beat(self, me: store.Process) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._run(lambda c: store.heartbeat(c, self.owner, me, self.lease_timeout))
            except BrokerError as exc:
                log.warning("embedded broker heartbeat failed", error=str(exc))
            else:
                await self._learn_listeners()
            self._wake_all()  # reclaimed leases; another process's delayed publishes come due

    async def _watch(self) -> None:
        """Wake every consumer when another connection (another process) has committed."""
        assert self._db is not None
        db, last, failing = self._db, None, False
        while True:
            try:
                version = await db.peek(store.data_version)
            except sqlite3.Error as exc:  # a busy or damaged file: the heartbeat's wake still comes
                if not failing:
                    log.warning("embedded broker could not read the file's version", error=type(exc).__name__)
                failing = True
            else:
                if last is not None and version != last:
                    self._wake_all()
                last, failing = version, False
            await asyncio.sleep(self.poll_interval)

    # -- the contract ----------------------------------------------------------------------

    async def declare(self, queue: str) -> None:
        await self._run(lambda c: c.execute("INSERT OR IGNORE INTO queues VALUES (?)", (queue,)))
        self._declared.add(queue)

    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]], *, delay: float = 0.0) -> None:
        if not items:
            return
        rows = [
            (q, m.key, m.message_id, orjson.dumps(m.headers).decode(), m.body) for q, m in items
        ]
        queues = {q for q, _ in items}
        unknown = queues - self._declared  # queues are never deleted: a known one stays known
        try:
            await self._run(lambda c: store.insert(c, rows, unknown, delay), durable=True)
        except PublishNotConfirmed:
            raise
        except BrokerError as exc:
            raise PublishNotConfirmed(f"{len(rows)} message(s) not stored: {exc}") from exc
        self._declared |= unknown
        for q in queues:
            self._wake(q)
            if delay > 0:  # handed out when it comes due, not at the next poll
                asyncio.get_running_loop().call_later(delay, self._wake_and_ring, q)
        if delay <= 0:
            self._ring(queues)

    async def expedite(self, queue: str, waits: Sequence[float] = ()) -> list[dict[str, Any]]:
        found = await self._run(lambda c: store.expedite(c, queue), durable=True)
        self._wake_and_ring(queue)
        return [orjson.loads(headers) for headers in found]

    async def stats(self, queue: str) -> QueueStats:
        ready, in_flight, consumers = await self._run(lambda c: store.stats(c, queue))
        return QueueStats(queue, ready, in_flight, consumers)

    async def backlog(self) -> int | None:
        """Every row of every queue: a count of an index as long as the backlog, asked once per
        batch of a bulk file (outside any transaction). The file's other operations cost more as
        the table grows (its rows hold the bodies: a backlog of 20,000 deliveries a queue made the
        file 300 MB), so a bulk file waits for this to fall (bench/README.md, stop 27)."""
        if self._db is None:
            raise BrokerUnavailable("the embedded broker is not connected")
        return await self._db.peek(store.backlog)

    async def drained(self, queues: Sequence[str]) -> bool:
        names = list(queues)
        return bool(await self._run(lambda c: store.drained(c, names)))

    def contention(self) -> dict[str, float]:
        """The file's writer lock as this instance met it since it connected: its transactions, the
        seconds it held the lock (others wait that long), and its waits over 1 ms for another
        connection (process) holding it, and their seconds; of the transactions, how many ran on the
        event loop (`inline_transactions`, [bus] inline_writes) rather than on the worker's thread."""
        return Worker.contention(self._db)

    async def describe(self, queues: Sequence[str]) -> BrokerDescription:
        """From the broker file opened read-only (connected or not: status reads the file of
        a bus running elsewhere); a missing file is not created."""
        return await asyncio.to_thread(store.describe, self.name, self.path, queues)

    async def _start_consumer(
        self, queue: str, on_delivery: Callable[[Delivery], None], prefetch: int
    ) -> Callable[[], Awaitable[None]]:
        if queue not in self._declared:
            known = await self._run(lambda c: store.is_declared(c, queue))
            if not known:
                raise BrokerError(f"cannot consume from queue {queue!r}: it was never declared")
            self._declared.add(queue)
        sub = _Subscription(self, queue, on_delivery, max(1, prefetch))
        owner = self.owner
        await self._run(lambda c: c.execute("INSERT INTO consumers VALUES (?, ?, ?)", (owner, sub.id, queue)))
        self._subscriptions.setdefault(queue, set()).add(sub)
        sub.start()
        return sub.stop

    async def _settle(self, delivery: Delivery, ok: bool) -> None:
        await self._settle_many([(delivery, ok)])

    async def _settle_many(self, settles: Sequence[tuple[Delivery, bool]]) -> None:
        """A batch's acks and requeues in one job (one transaction), retried like `_settle`."""
        leases: list[_Lease] = [delivery.token for delivery, _ in settles]
        rows = [(lease.row, lease.count, ok) for lease, (_, ok) in zip(leases, settles, strict=True)]
        owner = self.owner
        try:
            for delay in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, None):  # a busy file is transient
                try:
                    await self._run(lambda c: store.settle_rows(c, rows, owner))
                    break
                except BrokerUnavailable as exc:
                    if delay is None or self._db is None:
                        raise  # the rows stay leased by this live process until it restarts
                    log.warning("embedded settle failed, retrying", error=str(exc))
                    await asyncio.sleep(delay)
        finally:
            for lease in leases:
                lease.sub.settled(lease.row)
            settled = {lease.sub.queue for lease in leases}
            for queue in settled:
                self._wake(queue)
            self._ring(settled)  # a key's next message is ready: for another process's consumers too

    # -- helpers ---------------------------------------------------------------------------

    async def _run(self, job: Callable[[sqlite3.Connection], T], *, durable: bool = False) -> T:
        if self._db is None:
            raise BrokerUnavailable(f"embedded broker {self.path} is not connected (call connect())")
        return await self._db.run(job, durable)

    def _wake(self, queue: str) -> None:
        for sub in self._subscriptions.get(queue, ()):
            sub.wake.set()

    def _wake_all(self) -> None:
        for queue in list(self._subscriptions):
            self._wake(queue)

    def _wake_and_ring(self, queue: str) -> None:
        self._wake(queue)
        self._ring((queue,))

    def _ring(self, queues: Iterable[str]) -> None:
        """Ring the other processes consuming `queues` (those known at the last heartbeat; a
        consumer started since is woken by the poll until then)."""
        if self._bell is not None:
            self._bell.ring_consumers(queues)

    def _rung(self, queues: set[str]) -> None:
        """Another process rang: wake this instance's consumers of `queues`."""
        if EVERY_QUEUE in queues:
            self._wake_all()
            return
        for queue in queues:
            self._wake(queue)

    async def _learn_listeners(self) -> None:
        bell = self._bell
        if bell is None:
            return
        try:
            bell.listeners = await self._run(lambda c: store.listeners(c, self.owner))
        except BrokerError as exc:  # rings wait for the next heartbeat; the poll wakes them meanwhile
            log.warning("embedded broker could not read its listeners", error=str(exc))

    def _forget(self, sub: _Subscription) -> None:
        self._subscriptions.get(sub.queue, set()).discard(sub)


@dataclass(frozen=True, slots=True)
class _Lease:
    sub: _Subscription
    row: int
    count: int  # the delivery count at lease time: fences a lease that was reclaimed


class _Subscription:
    """One consumer: leases rows in batches up to `prefetch` unsettled ones."""

    def __init__(
        self, broker: EmbeddedBroker, queue: str, on_delivery: Callable[[Delivery], None], prefetch: int
    ) -> None:
        self.broker, self.queue, self.on_delivery, self.prefetch = broker, queue, on_delivery, prefetch
        self.id = uuid.uuid4().hex
        self.wake = asyncio.Event()
        self.unsettled: set[int] = set()
        self.all_settled = asyncio.Event()
        self.stopping = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        broker, owner = self.broker, self.broker.owner
        low_water = max(1, self.prefetch // 4)  # lease in batches, not one row per settle
        while not self.stopping:
            room = self.prefetch - len(self.unsettled)
            self.wake.clear()
            rows: list[tuple[Any, ...]] = []
            if room >= low_water or (room > 0 and not self.unsettled):
                try:
                    lease = functools.partial(store.lease, queue=self.queue, owner=owner, limit=room)
                    rows = await broker._run(lease)
                except BrokerError as exc:
                    log.warning("embedded consumer could not lease", queue=self.queue, error=str(exc))
            for row_id, key, message_id, headers, body, count in rows:
                if self.stopping:  # leased but never handed out: undo the lease
                    await broker._run(functools.partial(store.release, row=row_id, owner=owner, count=count))
                    continue
                self.unsettled.add(row_id)
                self.on_delivery(Delivery(
                    body=body, message_id=message_id, key=key, headers=orjson.loads(headers),
                    redelivered=count > 1, delivery_count=count, token=_Lease(self, row_id, count),
                ))
            if rows and len(rows) == room:
                continue  # there may be more
            await self.wake.wait()  # a publish, a settle, another process's commit, a heartbeat

    def settled(self, row: int) -> None:
        self.unsettled.discard(row)
        if not self.unsettled:
            self.all_settled.set()

    async def stop(self, wait_settled: bool = True) -> None:
        self.stopping = True
        self.wake.set()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        if wait_settled and self.unsettled:
            self.all_settled.clear()
            await self.all_settled.wait()
        self.broker._forget(self)
        if self.broker._db is not None:
            await self.broker._run(lambda c: c.execute(
                "DELETE FROM consumers WHERE owner=? AND consumer=?", (self.broker.owner, self.id)))


