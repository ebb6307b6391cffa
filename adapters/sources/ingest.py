"""Ingesting a bulk file (adapters.sources.bulk): bounded, concurrent, resumable, visible.

`Ingester(intake, source=…, checkpoints=<state_dir>/ingest).run(bulk)` submits the file's
records in batches of `batch` through the intake's `submit_many` (one validation each, one
confirmed `publish_many` and one audit flush per batch), with at most `window` batches in
flight: while one batch is submitted, the next is read. Batches are submitted in file order,
each once the one before it was taken, so a batch that fails stops the rest: a resident's
later change is never published before an earlier one that must be sent again. At most
`batch × (window + 1)` records are held at any time whatever the file's size (`peak_held`
says how many were). An intake without `submit_many` gets one `submit` at a time.

After each batch whose answers are all heard (in file order), the checkpoint
``<checkpoints>/<key>.json`` (key: the file's SHA-256 and the source) says how many records
are done, with the counts so far: a run killed (kill -9) and started again on the same file
continues from there. The records between the checkpoint and the kill are submitted again
and answer "duplicate" (the intake's seen ids): nothing is applied twice. The same file is
the file status and the console read (`read_progress`): file, records done/total, rate, ETA,
state (`running`, `done`, `stopped` (interrupted cleanly), `failed` (the broker, or a record
that cannot be read); a `running` file whose process is gone is `interrupted`). A file not
`done` resumes; a `done` one read again starts over (its records then answer "duplicate").
No value of a record is in it: counts, row numbers and issue codes and messages only.

Pace: an intake that can tell the bus's backlog (`backlog()`: the embedded broker counts what it
holds; RabbitMQ does not) is not given a batch while it holds more than `max_backlog` messages,
so a file does not run ahead of the router and the deliverers. The embedded broker's file costs
more per message as its backlog grows: a 60,000-record file ran 20 % faster end to end with the
backlog held under 5,000 (bench/README.md, stop 27). A backlog that does not change for
`patience` seconds (nothing consumes it: `renkei ingest` with no bus running, or only a
destination that is down keeps messages) ends the pacing for the rest of the file, and the broker
keeps what waits, as before pacing. So does one that moves but stays high for `MAX_PACE` ×
`patience` seconds (a healthy bus works 5,000 messages off in a few seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from adapters.sources.bulk import BulkFile, Item
from bus.errors import SourceRefused
from bus.ingests import IngestProgress, progress_dir, read_progress
from bus.ports import BatchIntake, Intake, RawMessage, Submission
from bus.validation.issues import Issue

__all__ = ["BATCH", "MAX_BACKLOG", "MAX_PACE", "PATIENCE", "WINDOW", "IngestBusy", "IngestProgress", "Ingester",
           "checkpoint_key", "progress_dir", "prune", "read_progress"]

BATCH = 500
WINDOW = 2
#: the bus's backlog (messages its broker holds) above which a bulk file waits before its next batch
MAX_BACKLOG = 5000
#: seconds a backlog may stay unchanged (nothing consumes it) before a waiting file stops pacing
PATIENCE = 2.0
#: a file waits at most this many `PATIENCE`s for a backlog that moves but stays high, then paces no more
MAX_PACE = 15
_PACE_POLL = 0.02
MAX_DETAILED = 1000
_SAVE_EVERY = 0.25  # seconds between checkpoint writes (and always at the end)
KEEP_DONE = 7 * 24 * 3600.0  # a finished file's checkpoint is dropped after a week (a resumable one is kept)


def checkpoint_key(digest: str, source: str) -> str:
    """The checkpoint's name: one per file content and source."""
    return hashlib.sha256(f"{digest}\0{source}".encode()).hexdigest()[:32]


class IngestBusy(Exception):
    """Another process is taking the same file for the same source."""


@runtime_checkable
class _Paced(Protocol):
    async def backlog(self) -> int | None: ...


class Ingester:
    """Submit one bulk file's records through `intake` as `source` (see the module's text)."""

    def __init__(self, intake: Intake, *, source: str, checkpoints: Path | None = None, batch: int = BATCH,
                 window: int = WINDOW, on_progress: Callable[[IngestProgress], None] | None = None,
                 restart: bool = False, max_backlog: int = MAX_BACKLOG, patience: float = PATIENCE) -> None:
        if batch < 1 or window < 1 or max_backlog < 0 or patience < 0:
            raise ValueError("batch and window must be at least 1, max_backlog and patience at least 0")
        self.intake, self.source, self.checkpoints = intake, source, checkpoints
        self.batched = isinstance(intake, BatchIntake)
        self.batch, self.window = batch, (window if self.batched else 1)
        self.on_progress, self.restart = on_progress, restart
        self.max_backlog, self.patience = max_backlog, patience
        self._paced = intake if isinstance(intake, _Paced) else None  # None: no pacing (or no more)
        self.held = 0
        self.peak_held = 0
        #: seconds spent waiting for the bus's backlog to fall (`max_backlog`)
        self.paced_seconds = 0.0
        self._saved = 0.0

    def checkpoint_of(self, bulk: BulkFile) -> Path | None:
        if self.checkpoints is None:
            return None
        return self.checkpoints / f"{checkpoint_key(bulk.digest, self.source)}.json"

    def resume_point(self, bulk: BulkFile) -> IngestProgress:
        """The checkpoint of this file and source when there is one (and not `restart`), else a fresh start."""
        fresh = IngestProgress(bulk.path.name, self.source, bulk.format, bulk.kind, bulk.digest, bulk.total)
        path = self.checkpoint_of(bulk)
        if path is None or self.restart or not path.exists():
            return fresh
        try:
            saved = IngestProgress.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return fresh
        if saved.state == "done":  # the same file again: every record goes again (and answers duplicate)
            return fresh
        fresh.done = min(saved.done, bulk.total) if bulk.total is not None else saved.done
        fresh.resumed_from = fresh.done
        fresh.accepted, fresh.duplicate, fresh.rejected = saved.accepted, saved.duplicate, saved.rejected
        fresh.rejected_records = saved.rejected_records[:MAX_DETAILED]
        fresh.rejected_by = dict(saved.rejected_by)
        return fresh

    @contextlib.contextmanager
    def claimed(self, bulk: BulkFile) -> Iterator[None]:
        """This file and source for this process alone (a lock beside the checkpoint), or IngestBusy:
        two processes taking the same file would overwrite each other's checkpoint."""
        if self.checkpoints is None:
            yield
            return
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.checkpoints / f"{checkpoint_key(bulk.digest, self.source)}.lock",
                     os.O_CREAT | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IngestBusy(f"{bulk.path.name} is being ingested by another process (source "
                                 f"{self.source}); it continues there") from None
            yield
        finally:
            os.close(fd)  # releases the lock

    async def run(self, bulk: BulkFile) -> IngestProgress:
        """Submit every record not done yet; the final progress (state `done`). A broker failure
        or an unreadable record raises, with the checkpoint at the last batch fully answered;
        IngestBusy when another process is taking the same file."""
        with self.claimed(bulk):
            if self.checkpoints is not None:
                prune(self.checkpoints)
            return await self._run(bulk)

    async def _run(self, bulk: BulkFile) -> IngestProgress:
        progress = self.resume_point(bulk)
        self._save(progress, force=True)
        pending: deque[tuple[list[Item], asyncio.Task[list[Submission]]]] = deque()
        try:
            batch: list[Item] = []
            for item in bulk.items(progress.done):
                batch.append(item)
                self._hold(1)
                if len(batch) >= self.batch:
                    await self._keep_pace()
                    pending.append((batch, self._start(batch, bulk, progress, pending)))
                    batch = []
                    while len(pending) >= self.window:
                        await self._finish(pending.popleft(), progress)
            if batch:
                pending.append((batch, self._start(batch, bulk, progress, pending)))
            while pending:
                await self._finish(pending.popleft(), progress)
        except BaseException as exc:
            for _, task in pending:
                task.cancel()
            await asyncio.gather(*(task for _, task in pending), return_exceptions=True)
            stopped = isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt))
            progress.state = "stopped" if stopped else "failed"
            self._save(progress, force=True)
            raise
        progress.state = "done"
        self._save(progress, force=True)
        return progress

    async def _keep_pace(self) -> None:
        """Wait while the bus holds more than `max_backlog` messages and works them off. A backlog
        that has not changed at all for `patience` seconds (nothing consumes it), or has stayed
        high for `MAX_PACE` × `patience` (a retrying destination's copies move it), lets the batch
        go and ends the pacing for the rest of the file (module text). "Changed", not "fell":
        routing a change takes one message off the intake queue and puts one on each
        destination's, so a busy bus's backlog can rise."""
        if self._paced is None:
            return
        depth = await self._paced.backlog()
        if depth is None or depth <= self.max_backlog:
            return
        loop = asyncio.get_running_loop()
        started = moved = loop.time()
        try:
            while depth is not None and depth > self.max_backlog:
                now = loop.time()
                if now - moved >= self.patience or now - started >= MAX_PACE * self.patience:
                    self._paced = None  # nothing consumes it, or not fast enough to matter: pace no more
                    return
                await asyncio.sleep(_PACE_POLL)
                before, depth = depth, await self._paced.backlog()
                if depth != before:
                    moved = loop.time()
        finally:
            self.paced_seconds += loop.time() - started

    def _hold(self, n: int) -> None:
        self.held += n
        self.peak_held = max(self.peak_held, self.held)

    def _start(self, batch: list[Item], bulk: BulkFile, progress: IngestProgress,
               pending: deque[tuple[list[Item], asyncio.Task[list[Submission]]]]) -> asyncio.Task[list[Submission]]:
        previous = pending[-1][1] if pending else None
        return asyncio.ensure_future(self._submit(batch, bulk, progress, previous))

    async def _submit(self, batch: list[Item], bulk: BulkFile, progress: IngestProgress,
                      previous: asyncio.Task[list[Submission]] | None) -> list[Submission]:
        if previous is not None:  # submitted in file order, each after the one before it was taken: a batch
            await previous        # that failed stops the rest (per-resident order kept across batches)
        ready = [RawMessage(i.raw, bulk.content_type, self.source, bulk.kind) for i in batch if i.raw is not None]
        if self.batched:
            assert isinstance(self.intake, BatchIntake)
            answers: Iterable[Submission] = await self.intake.submit_many(ready)
            return _merge(batch, bulk.kind, answers)
        merged = []
        for item in batch:  # one at a time, each heard before the next (an intake without batches)
            if item.raw is None:
                answer = _unparsed(item, bulk.kind)
            else:
                try:
                    answer = await self.intake.submit(item.raw, content_type=bulk.content_type, source=self.source,
                                                      kind=bulk.kind)
                except SourceRefused as refusal:  # audited by the bus; this source's own mistake
                    answer = Submission("rejected", kind=bulk.kind, issues=(Issue(refusal.code, str(refusal), "/"),))
            self._account(progress, item, answer, bulk)
            merged.append(answer)
        return merged

    async def _finish(self, entry: tuple[list[Item], asyncio.Task[list[Submission]]],
                      progress: IngestProgress) -> None:
        batch, task = entry
        answers = await task
        if self.batched:
            for item, answer in zip(batch, answers, strict=True):
                self._account(progress, item, answer, None)
        self.held -= len(batch)
        self._save(progress)

    def _account(self, progress: IngestProgress, item: Item, answer: Submission, bulk: BulkFile | None) -> None:
        progress.done = item.index + 1
        setattr(progress, answer.status, getattr(progress, answer.status) + 1)
        if answer.status == "rejected":
            issues = answer.to_dict()["issues"]
            for what in sorted({f"{i.get('code')} {i.get('path') or '/'}" for i in issues}):
                progress.rejected_by[what] = progress.rejected_by.get(what, 0) + 1
            if len(progress.rejected_records) < MAX_DETAILED:
                where = "record" if progress.format == "avro" else "row"
                progress.rejected_records.append({where: item.number, "issues": issues})
        progress.updated = time.time()
        if self.on_progress is not None:
            self.on_progress(progress)

    def _save(self, progress: IngestProgress, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._saved < _SAVE_EVERY:
            return
        self._saved = now
        progress.updated = time.time()
        if self.checkpoints is None:
            return
        path = self.checkpoints / f"{checkpoint_key(progress.digest, self.source)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(progress.to_dict(), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)  # a kill -9 leaves the old checkpoint or the new one, never half of one


def prune(checkpoints: Path, *, now: float | None = None) -> list[str]:
    """Drop the checkpoints (and locks) of files finished more than KEEP_DONE ago: the folder does
    not grow for ever. Those not finished stay, to be resumed. The names dropped."""
    now = time.time() if now is None else now
    dropped = []
    for path in checkpoints.glob("*.json"):
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        finished = isinstance(saved, dict) and saved.get("state") == "done"
        if finished and now - float(saved.get("updated", now)) > KEEP_DONE:
            path.unlink(missing_ok=True)
            path.with_suffix(".lock").unlink(missing_ok=True)
            dropped.append(path.name)
    return dropped


def _unparsed(item: Item, kind: str) -> Submission:
    assert item.issue is not None
    return Submission("rejected", kind=kind, issues=(item.issue,))


def _merge(batch: list[Item], kind: str, answers: Iterable[Submission]) -> list[Submission]:
    """The answers of the submitted items, with the unparsed items' rejections in their places."""
    heard = iter(answers)
    return [next(heard) if item.raw is not None else _unparsed(item, kind) for item in batch]
