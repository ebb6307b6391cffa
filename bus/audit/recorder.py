"""`AuditRecorder`: audit from async code without waiting on the store for each event.

    recorder = AuditRecorder(log)
    recorder.emit(AuditEvent.of(EventType.DELIVERED, envelope, receipt=receipt.reference))
    recorder.event(EventType.ROUTED, projection_envelope)      # the same, shorter
    await recorder.flush()      # everything emitted so far is in the store
    await recorder.aclose()     # flush and stop

When the log has a signing key and a checkpoint interval, the head is also signed once the
interval has passed without a write (the log signs on a write when it is due), so no record
stays unsigned longer than the interval (bus.audit.log).

`emit` screens the event at once (a caller's mistake raises where it was made) and queues
it; a background task writes queued events in batches (bus.groupcommit: one transaction
per batch, in a worker thread), at most `max_delay` seconds after they were emitted. With
`inline` (`[bus] inline_writes`: on by default with the embedded broker, bus/settings_batching.py) a batch
is written on the event loop when the store can take it at once (AuditStore.try_append: a
SQLite trail whose file no other process is writing just then), and in the thread otherwise:
the loop never waits for another writer. A failing store is retried with backoff and nothing
queued is dropped; `flush` raises AuditStoreError when it cannot finish within its timeout.

The pipeline's stages (router, deliverer, intake) `flush` before they let a message go (the
ack, the answer to a source): a flush wakes the writer at once, and the stages' concurrent
messages flushing meanwhile share the next transaction (a group commit), so a crash loses
no event of an acked message and the cost stays one transaction per batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bus.audit.events import AuditEvent, EventType
from bus.audit.fanout import join
from bus.audit.guard import screen
from bus.audit.log import AuditLog
from bus.errors import AuditStoreError
from bus.groupcommit import GroupCommit
from bus.logs import get_logger

__all__ = ["AuditRecorder"]

_log = get_logger("renkei.audit")


class AuditRecorder:
    def __init__(self, log: AuditLog, max_batch: int = 1000, max_delay: float = 0.05,
                 flush_timeout: float = 30.0, *, join_routed: bool = True, inline: bool = False) -> None:
        self.log = log
        self.inline = inline
        self.written_inline = 0  # batches written on the event loop (a count, for the benchmarks)
        self.written_in_thread = 0
        #: one `routed` record per change, not per destination (bus.audit.fanout; [audit] routed_records)
        self.join_routed = join_routed
        self.flush_timeout = flush_timeout
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._events: GroupCommit[AuditEvent] = GroupCommit(self._write, max_batch=max_batch, max_delay=max_delay)
        self._closing = False
        self._signing: asyncio.Task[None] | None = None  # signs the head `checkpoint_interval` after the last write

    @property
    def pending(self) -> int:
        """Events emitted and not yet written."""
        return self._events.pending

    def emit(self, event: AuditEvent) -> None:
        """Queue one event (screened now); call from inside the running event loop."""
        if self._closing:
            raise AuditStoreError("the audit recorder is closed")
        self._events.add(screen(event))

    def event(self, event: EventType | str, envelope: Any, **fields: Any) -> None:
        """`emit(AuditEvent.of(event, envelope, **fields))`."""
        self.emit(AuditEvent.of(event, envelope, **fields))

    async def flush(self) -> None:
        """Wait until every event emitted before this call is in the store (at most `flush_timeout`)."""
        if not self.pending:
            return
        timeout = self.flush_timeout
        try:
            async with asyncio.timeout(timeout):
                await self._events.drain()
        except TimeoutError:
            raise AuditStoreError(f"{self.pending} audit events not written after {timeout} s "
                                  f"(store {self.log.store.location})") from None

    async def aclose(self) -> None:
        """Flush and stop the writer."""
        try:
            await self.flush()
        finally:
            self._closing = True
            await self._events.aclose()
            if self._signing is not None:
                self._signing.cancel()

    async def _write(self, batch: list[AuditEvent]) -> list[None]:
        """One transaction, on the loop if the store takes it at once, else in a worker thread; a
        failing store is retried with backoff, the events kept (and the later ones wait behind
        them: the trail is a chain)."""
        backoff = 0.1
        events = join(batch) if self.join_routed else batch  # once, not again on each retry
        while True:
            try:
                if self.inline and self.log.try_append_screened(events) is not None:
                    self.written_inline += 1
                else:
                    await asyncio.to_thread(self.log.append_screened, events)
                    self.written_in_thread += 1
                self._sign_later()
                return [None] * len(batch)
            except Exception as exc:  # keep the events; the store may come back
                _log.error("audit store write failed", error=f"{type(exc).__name__}: {exc}", retry_in=backoff,
                           pending=self.pending)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _sign_later(self) -> None:
        """(Re)start the timer that signs the head once `checkpoint_interval` passes without a write."""
        interval = self.log.checkpoint_interval
        if self.log.signer is None or interval <= 0 or self._closing:
            return
        if self._signing is not None:
            self._signing.cancel()
        self._signing = asyncio.get_running_loop().create_task(self._sign_after(interval),
                                                               name="renkei-audit-checkpoint")

    async def _sign_after(self, interval: float) -> None:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(self.log.checkpoint)
        except Exception as exc:  # the next write signs when it is due
            _log.error("audit checkpoint failed", error=f"{type(exc).__name__}: {exc}")
