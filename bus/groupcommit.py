"""One group commit for every store that batches: what arrives while a commit runs shares the next.

    group = GroupCommit(commit, max_batch=1000, max_delay=0.0)
    value = await group.submit(item)   # returns once the item's batch is committed: its own outcome
    group.add(item)                    # the same without waiting (the audit recorder's emit)
    await group.drain()                # everything added so far is committed (the recorder's flush)
    await group.aclose()

`commit(batch)` is an async function that writes a batch in one transaction and returns one
outcome per item, in order: a value, or `Failed(error)` for an item that failed on its own (the
embedded broker's jobs); raising fails every item of the batch. One commit runs at a time, in
the order items were added, so a writer that must append in sequence (the audit hash chain)
can use it. `max_delay` is how long a batch smaller than `max_batch` may wait to grow (0: it
goes as soon as the writer is free; the items added meanwhile share the next commit).

Why: one transaction (and one fsync) costs the same for one row as for hundreds, so
concurrent writers that each wait for their own commit share one. Users: the embedded
broker's worker (bus/brokers/embedded_store.py: jobs of any kind — a batch's publishes, a
batch's settles — one transaction per batch of jobs), the audit recorder
(bus/audit/recorder.py: batches gathered for up to 50 ms, retried until the store takes them),
and the route stage's routed ids (bus/stages/route.py: a stage batch's ids are one item; a failed
commit fails every message of the batches it held, which the broker then hands out again).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Failed", "GroupCommit"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Failed:
    """The outcome of one item that failed on its own; the others of its batch stand."""

    error: BaseException


class GroupCommit(Generic[T]):
    """Batches items into commits; see the module docstring. Bound to one event loop."""

    def __init__(self, commit: Callable[[list[T]], Awaitable[Sequence[Any]]], *, max_batch: int = 1000,
                 max_delay: float = 0.0) -> None:
        if max_batch < 1 or max_delay < 0:
            raise ValueError(f"max_batch must be >= 1 and max_delay >= 0, got {max_batch}, {max_delay}")
        self._commit = commit
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._pending: list[tuple[T, asyncio.Future[Any] | None]] = []
        self._in_flight: list[tuple[T, asyncio.Future[Any] | None]] = []
        self._added = 0
        self._done = 0
        self._has_items = asyncio.Event()
        self._now = asyncio.Event()  # a full batch, or a drain: commit without waiting max_delay
        # drain() callers, (the count each waits for, its future), in call order (so in target order):
        # a commit wakes only those it satisfies (a Condition's notify_all woke every waiter at each
        # commit: ~2.4 wake-ups per drain in the embedded benchmark, most of them to sleep again)
        self._drains: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Items added and not committed yet."""
        return self._added - self._done

    def add(self, item: T) -> None:
        """Queue `item` for the next commit without waiting for it (see `drain`)."""
        self._put(item, None)

    async def submit(self, item: T) -> Any:
        """Queue `item` and return its outcome once its batch is committed (or raise its error)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(item, future)
        return await future

    async def drain(self) -> None:
        """Return once every item added before this call is committed (or failed)."""
        target = self._added
        if self._done >= target:
            return
        self._now.set()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drains.append((target, waiter))
        await waiter

    async def aclose(self) -> None:
        """Stop the writer; items not committed fail with RuntimeError (call `drain` first)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _, future in (*self._in_flight, *self._pending):
            if future is not None and not future.done():
                future.set_exception(RuntimeError("closed before the commit"))
        self._in_flight, self._pending = [], []

    def _put(self, item: T, future: asyncio.Future[Any] | None) -> None:
        if self._closed:
            raise RuntimeError("the group commit is closed")
        self._pending.append((item, future))
        self._added += 1
        self._has_items.set()
        if len(self._pending) >= self.max_batch:
            self._now.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write(), name="renkei-group-commit")

    async def _write(self) -> None:
        while True:
            if not self._pending:
                self._has_items.clear()
                await self._has_items.wait()
            if self.max_delay and len(self._pending) < self.max_batch:
                try:
                    await asyncio.wait_for(self._now.wait(), self.max_delay)
                except TimeoutError:
                    pass
            if len(self._pending) < self.max_batch:
                # one turn of the loop first: the tasks ready now (a broker frame's deliveries, the
                # stage batches finishing together) add theirs to this commit instead of the next
                # (the embedded benchmark: 13 % fewer broker transactions)
                await asyncio.sleep(0)
            self._now.clear()
            batch = self._in_flight = self._pending[:self.max_batch]
            del self._pending[:len(batch)]
            outcomes: Sequence[Any]
            try:
                outcomes = await self._commit([item for item, _ in batch])
            except Exception as exc:
                outcomes = [Failed(exc)] * len(batch)
            if len(outcomes) != len(batch):
                outcomes = [Failed(RuntimeError(f"commit returned {len(outcomes)} outcomes for {len(batch)} items"))
                            ] * len(batch)
            self._in_flight = []
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future is None or future.done():  # fire and forget, or the caller was cancelled
                    continue
                if isinstance(outcome, Failed):
                    future.set_exception(outcome.error)
                else:
                    future.set_result(outcome)
            self._done += len(batch)
            drains = self._drains
            while drains and drains[0][0] <= self._done:
                _, waiter = drains.popleft()
                if not waiter.done():  # a drain cancelled (timed out) meanwhile
                    waiter.set_result(None)
