"""`AuditRecorder`: audit from async code without waiting on the store for each event.

    recorder = AuditRecorder(log)
    recorder.emit(AuditEvent.of(EventType.DELIVERED, envelope, receipt=receipt.reference))
    recorder.event(EventType.ROUTED, projection_envelope)      # the same, shorter
    await recorder.flush()      # everything emitted so far is in the store
    await recorder.aclose()     # flush and stop

`emit` screens the event at once (a caller's mistake raises where it was made) and queues
it; a background task writes queued events in batches (one transaction per batch, in a
worker thread), at most `max_delay` seconds after they were emitted. A failing store is
retried with backoff and nothing queued is dropped; `flush` raises AuditStoreError when it
cannot finish within its timeout.

The pipeline's stages (router, deliverer, intake) `flush` before they let a message go (the
ack, the answer to a source): a flush wakes the writer at once, and the stages' concurrent
messages flushing meanwhile share the next transaction (a group commit), so a crash loses
no event of an acked message and the cost stays one transaction per batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bus.audit.events import AuditEvent, EventType
from bus.audit.guard import screen
from bus.audit.log import AuditLog
from bus.errors import AuditStoreError
from bus.logs import get_logger

__all__ = ["AuditRecorder"]

_log = get_logger("renkei.audit")


class AuditRecorder:
    def __init__(self, log: AuditLog, max_batch: int = 1000, max_delay: float = 0.05,
                 flush_timeout: float = 30.0) -> None:
        self.log = log
        self.flush_timeout = flush_timeout
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._queue: list[AuditEvent] = []
        self._emitted = 0
        self._written = 0
        self._pending_event = asyncio.Event()  # set: the queue is not empty
        self._wakeup = asyncio.Event()  # set: write now (a full batch, a flush)
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def pending(self) -> int:
        """Events emitted and not yet written."""
        return self._emitted - self._written

    def emit(self, event: AuditEvent) -> None:
        """Queue one event (screened now); call from inside the running event loop."""
        if self._closing:
            raise AuditStoreError("the audit recorder is closed")
        self._queue.append(screen(event))
        self._emitted += 1
        self._pending_event.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="renkei-audit-recorder")
        if len(self._queue) >= self.max_batch:
            self._wakeup.set()

    def event(self, event: EventType | str, envelope: Any, **fields: Any) -> None:
        """`emit(AuditEvent.of(event, envelope, **fields))`."""
        self.emit(AuditEvent.of(event, envelope, **fields))

    async def flush(self) -> None:
        """Wait until every event emitted before this call is in the store (at most `flush_timeout`)."""
        timeout = self.flush_timeout
        target = self._emitted
        if self._written >= target:
            return
        self._wakeup.set()
        try:
            async with asyncio.timeout(timeout):
                async with self._progress:
                    await self._progress.wait_for(lambda: self._written >= target)
        except TimeoutError:
            raise AuditStoreError(f"{target - self._written} audit events not written after {timeout} s "
                                  f"(store {self.log.store.location})") from None

    async def aclose(self) -> None:
        """Flush and stop the writer."""
        try:
            await self.flush()
        finally:
            self._closing = True
            if self._task is not None:
                self._task.cancel()
                try:
                    await self._task
                except asyncio.CancelledError:
                    pass

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            if not self._queue:
                self._pending_event.clear()
                await self._pending_event.wait()
            if len(self._queue) < self.max_batch:  # let a batch gather for at most max_delay
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self.max_delay)
                except TimeoutError:
                    pass
            self._wakeup.clear()
            batch = self._queue[: self.max_batch]
            store = self.log.store
            try:
                await asyncio.to_thread(store.append, batch, self.log.signer, self.log.checkpoint_every)
            except Exception as exc:  # keep the events; the store may come back
                _log.error("audit store write failed", error=f"{type(exc).__name__}: {exc}", retry_in=backoff,
                           pending=len(self._queue))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            del self._queue[: len(batch)]
            self._written += len(batch)
            async with self._progress:
                self._progress.notify_all()
