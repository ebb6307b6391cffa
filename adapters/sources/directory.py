"""Directory source: take message files dropped into an inbox and submit them to the bus.

Producers write a file under a temporary name and rename it when complete; this source
only looks at final names: dotfiles and names ending in ``.tmp``, ``.part`` or ``~`` are
ignored. Each file found (oldest name first) is submitted, then moved:

    inbox/processed/<name>               all accepted or duplicate
    inbox/rejected/<name>                rejected (or a batch with any record rejected)
    .../<name>.result.json               beside it: status, message ids, issues / summary

Tenants: an inbox belongs to one source (`[sources.<id>] inbox`; `renkei run` starts one
`DirectorySource(inbox, intake, source=<id>)` per source), so whoever can write into it speaks
as that source; the bus then takes only changes of the source's own municipalities. A file
of another municipality is rejected with A403 (audited `forbidden`, its content not kept).

Only regular files directly inside the inbox are taken. A symbolic link (wherever it points),
a FIFO, a device, a socket or a hard link (a regular file with another name elsewhere) is
refused without being read (R230): its name is removed from the inbox and a result file in
rejected/ says what it was. Files are opened with O_NOFOLLOW|O_NONBLOCK and checked again
after opening (the same inode, still a regular file), so a swap between the check and the
open is refused too, and a FIFO never blocks the source.

A file never leaves the inbox before the bus answered for it: a crash between submit and
move re-submits it on the next run, and the bus answers "duplicate" — nothing is lost and
nothing is applied twice. If the broker is unavailable the file stays for the next poll.

File types (a ``*.zip`` is a ぴったりサービス batch of applications: adapters.sources.pittari):

- ``*.xml``  one message per file (read with the intake's size cap, +1 byte so an
  oversized file is rejected by the bus with R100 and audited like any rejection);
- ``*.avro`` an Avro Object Container File holding many records of one kind (the kind from
  the `kind` setting, else the file's ``renkei.kind`` metadata, else the schema's
  namespace ``renkei.<kind with _>.v<N>``), each record submitted as schemaless Avro —
  re-encoded with the kind's schema when a catalog is given (the file's schema is resolved
  to it), else with the file's own schema;
- ``*.csv`` / ``*.dat`` the file-linkage CSV and fixed-width files of a kind
  (adapters.sources.csv_inbox, fixed_inbox, docs/file-layouts.md), each row as the kind's XML.

A bulk file (the last three) is checked as a whole first, in one streaming pass
(adapters.sources.bulk: a file over `max_records` is rejected untouched, as is a CSV of no
known encoding or one that disagrees with its control record), then streamed through the
intake in batches with a bounded window (adapters.sources.ingest): memory stays bounded
whatever the file's size. With `checkpoints` (the Inbox gives ``<state_dir>/ingest``) its
position is kept after every answered batch, so a bus killed mid-file continues where it was
(the records re-sent answer "duplicate"), and `renkei status` and the console show its
progress. Progress is also reported every `progress_every` records and at least every
`progress_seconds` (callback and a structlog event). The result file has the counts and the
issues of the first 1,000 rejected records.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog

from adapters.sources.bulk import format_of, open_bulk
from adapters.sources.csv_inbox import CsvRefused
from adapters.sources.inbox_files import Refused, not_regular, open_regular
from adapters.sources.ingest import IngestBusy, Ingester, IngestProgress, progress_dir
from bus.errors import BrokerError, ConfigError, SourceRefused
from bus.ports import Gatekeeper, Intake, Submission
from bus.validation.issues import Issue

__all__ = ["DirectorySource", "FileResult", "Inbox", "Progress"]

log = structlog.get_logger("renkei.source.directory")
_IGNORED_SUFFIXES = (".tmp", ".part", ".partial", "~", ".result.json")
_MAX_DETAILED = 1000


@dataclass(slots=True)
class Progress:
    """Where a batch file stands; passed to the progress callback."""

    file: str
    done: int
    total: int
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        """Records per second so far."""
        return self.done / max(time.monotonic() - self.started, 1e-9)


@dataclass(slots=True)
class FileResult:
    """What happened to one file: processed, rejected, or left for the next run (retry)."""

    name: str
    status: Literal["processed", "rejected", "retry"]
    counts: dict[str, int]
    moved_to: Path | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class DirectorySource:
    """Poll `inbox` for message files and submit each through `intake`."""

    def __init__(
        self,
        inbox: str | os.PathLike[str],
        intake: Intake,
        *,
        pattern: str | Sequence[str] = "*.xml",
        poll: float = 1.0,
        source: str = "directory",
        kind: str | None = None,
        catalog: Any = None,
        max_size: int = 1024 * 1024,
        max_records: int = 1_000_000,
        progress: Callable[[Progress], None] | None = None,
        progress_every: int = 10_000,
        progress_seconds: float = 5.0,
        checkpoints: Path | None = None,
    ) -> None:
        if poll <= 0 or max_records < 1 or progress_every < 1 or max_size < 1 or progress_seconds <= 0:
            raise ConfigError("directory source: poll, max_size, max_records, progress_every and progress_seconds "
                              "must be > 0")
        self.inbox = Path(inbox)
        if not self.inbox.is_dir():
            raise ConfigError(f"directory source: inbox {self.inbox} is not a directory")
        self.intake = intake
        self.patterns = [pattern] if isinstance(pattern, str) else list(pattern)
        self.poll = poll
        self.source = source
        self.kind = kind
        self.catalog = catalog
        self.max_size = max_size
        self.max_records = max_records
        self.progress = progress
        self.progress_every = progress_every
        self.progress_seconds = progress_seconds
        self.checkpoints = checkpoints
        self.processed = self.inbox / "processed"
        self.rejected = self.inbox / "rejected"

    # -- loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until `stop` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.run_once()
            except OSError as exc:
                log.warning("directory.scan_failed", inbox=str(self.inbox), error=str(exc))
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.poll)
            except TimeoutError:
                pass

    async def run_once(self) -> list[FileResult]:
        """Take every complete file now in the inbox; stop early if the broker is down."""
        results: list[FileResult] = []
        for path in self.pending():
            result = await self._take(path)
            results.append(result)
            if result.status == "retry":
                break  # the bus cannot accept now; the rest waits for the next poll
        return results

    def pending(self) -> list[Path]:
        """Complete files waiting in the inbox, by name."""
        found: set[Path] = set()
        for pattern in self.patterns:
            found.update(self.inbox.glob(pattern))
        return sorted(p for p in found if _is_final(p))

    # -- one file ----------------------------------------------------------------------

    async def _take(self, path: Path) -> FileResult:
        refusal = not_regular(path)
        if refusal is not None:
            return self._refuse(path, refusal)
        try:
            if path.suffix.lower() == ".xml":
                result = await self._take_message(path)
            elif path.suffix.lower() in (".avro", ".csv", ".dat"):
                result = await self._take_bulk(path)
            elif path.suffix.lower() == ".zip":  # a ぴったりサービス batch
                result = await self._take_pittari(path)
            else:
                issue = {"code": "R220", "message": "unknown file type: expected .xml, .avro, .csv, .dat or .zip"}
                result = FileResult(path.name, "rejected", {"rejected": 1}, detail={"issues": [issue]})
        except BrokerError as exc:
            log.warning("directory.broker_unavailable", file=path.name, error=type(exc).__name__)
            return FileResult(path.name, "retry", {})
        except Refused as exc:  # swapped for something else between the check and the open
            return self._refuse(path, str(exc))
        if result.status == "retry":  # taken by another process now: it stays for a later poll
            return result
        self._finish(path, result)
        log.info("directory.file_done", file=path.name, status=result.status, **result.counts)
        return result

    def _refuse(self, path: Path, what: str) -> FileResult:
        """Not a regular file: never read; its name leaves the inbox, the result file says why."""
        issue = {"code": "R230", "message": f"{what}: only regular files inside the inbox are taken; "
                                             "it was not read and its name was removed from the inbox"}
        result = FileResult(path.name, "rejected", {"rejected": 1}, detail={"issues": [issue]})
        self.rejected.mkdir(exist_ok=True)
        _write_result(self.rejected / f"{path.name}.result.json",
                      {"file": path.name, "status": "rejected", "counts": result.counts, **result.detail})
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        log.warning("directory.file_refused", file=path.name, reason=what)
        return result

    async def _take_message(self, path: Path) -> FileResult:
        with open_regular(path) as fh:
            raw = fh.read(self.max_size + 1)  # the bus rejects anything over the cap (R100)
        answer = await self._submit(raw, "application/xml", self.kind)
        status: Literal["processed", "rejected"] = "rejected" if answer.status == "rejected" else "processed"
        return FileResult(path.name, status, {answer.status: 1}, detail=answer.to_dict())

    async def _take_pittari(self, path: Path) -> FileResult:
        """A ぴったりサービス batch (.zip, adapters.sources.pittari), each application a message."""
        from adapters.sources.pittari import take_pittari

        if self.catalog is None:
            from bus.catalog import Catalog

            self.catalog = Catalog.load()
        status, counts, detail = await take_pittari(path, self._submit, self.catalog, self.kind, self.max_records)
        return FileResult(path.name, "rejected" if status == "rejected" else "processed", counts, detail=detail)

    async def _take_bulk(self, path: Path) -> FileResult:
        """An Avro container, CSV (.csv) or fixed-width (.dat) file: checked as a whole, then its
        records streamed through the intake in batches (adapters.sources.ingest), resumable."""
        fmt = format_of(path) or "avro"
        if fmt != "avro" and self.catalog is None:
            from bus.catalog import Catalog

            self.catalog = Catalog.load()
        key = "rejected_records" if fmt == "avro" else "rejected_rows"
        whole = {"accepted": 0, "duplicate": 0, "rejected": 0 if fmt == "avro" else 1}
        try:
            bulk = await asyncio.to_thread(open_bulk, path, fmt, self.catalog, self.kind)
        except CsvRefused as exc:
            return _broken(path, whole, exc.code, str(exc), key)
        except ConfigError as exc:
            return _broken(path, whole, "R220", str(exc), key)
        if bulk.total > self.max_records:
            msg = f"the file holds {bulk.total} records, more than the cap of {self.max_records}"
            return _broken(path, whole, "R100", msg, key)
        progress = Progress(path.name, 0, bulk.total)
        reported = time.monotonic()

        def report(p: IngestProgress) -> None:
            nonlocal reported
            progress.done, progress.accepted, progress.duplicate, progress.rejected = (
                p.done, p.accepted, p.duplicate, p.rejected)
            now = time.monotonic()  # every N records, and at least every few seconds of a slow file
            if p.done % self.progress_every == 0 or p.done == p.total or now - reported >= self.progress_seconds:
                self._report(progress, p.counts())
                reported = now

        ingester = Ingester(self.intake, source=self.source, checkpoints=self.checkpoints, on_progress=report)
        try:
            done = await ingester.run(bulk)
        except IngestBusy as busy:  # `renkei ingest` is taking it: the inbox leaves it for a later poll
            log.warning("directory.file_busy", file=path.name, reason=str(busy))
            return FileResult(path.name, "retry", {})
        except (BrokerError, asyncio.CancelledError, Refused):
            raise
        except Exception as exc:  # corrupt blocks after some records went in
            counts = {"accepted": progress.accepted, "duplicate": progress.duplicate, "rejected": progress.rejected}
            msg = f"Avro container unreadable at record {progress.done} ({type(exc).__name__})"
            return _broken(path, counts, "R210", msg, key)
        counts = done.counts()
        status: Literal["processed", "rejected"] = "rejected" if counts["rejected"] else "processed"
        detail: dict[str, Any] = {"kind": bulk.kind, **bulk.detail, key: done.rejected_records}
        if done.resumed_from:
            detail["resumed_from"] = done.resumed_from
        return FileResult(path.name, status, counts, detail=detail)

    async def _submit(self, raw: bytes, content_type: str, kind: str | None) -> Submission:
        try:
            return await self.intake.submit(raw, content_type=content_type, source=self.source, kind=kind)
        except SourceRefused as refusal:  # audited by the bus; the file is this source's own mistake
            return Submission("rejected", kind=kind, issues=(Issue(refusal.code, str(refusal), path="/"),))

    def _report(self, progress: Progress, counts: dict[str, int]) -> None:
        progress.accepted, progress.duplicate, progress.rejected = (
            counts["accepted"],
            counts["duplicate"],
            counts["rejected"],
        )
        log.info(
            "directory.progress",
            file=progress.file,
            done=progress.done,
            total=progress.total,
            rate=round(progress.rate),
            **counts,
        )
        if self.progress is not None:
            self.progress(progress)

    def _finish(self, path: Path, result: FileResult) -> None:
        """Write the result file, then move the input beside it (never overwriting)."""
        target_dir = self.processed if result.status == "processed" else self.rejected
        target_dir.mkdir(exist_ok=True)
        target = target_dir / path.name
        if target.exists():
            target = target_dir / f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}{path.suffix}"
        detail = {k: v for k, v in result.detail.items() if k != "status"}
        report = {"file": path.name, "status": result.status, "counts": result.counts, **detail}
        _write_result(target_dir / f"{target.name}.result.json", report)
        os.replace(path, target)
        result.moved_to = target


def _write_result(path: Path, report: dict[str, Any]) -> None:
    data = json.dumps(report, ensure_ascii=False, indent=1, default=str).encode()
    tmp = path.with_name(f".{path.name.removesuffix('.result.json')}.result.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _is_final(path: Path) -> bool:
    """A complete name to take: not a temporary or hidden name, not a directory (links, FIFOs and
    devices are taken, to be refused with a result file)."""
    name = path.name
    if name.startswith(".") or name.endswith(_IGNORED_SUFFIXES):
        return False
    try:
        return not stat.S_ISDIR(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def _broken(path: Path, counts: dict[str, int], code: str, message: str, key: str) -> FileResult:
    detail = {"issues": [{"code": code, "message": message}], key: []}
    return FileResult(path.name, "rejected", counts, detail=detail)


class Inbox:
    """An inbox directory as a bus source (bus.ports.Source): a `DirectorySource` polling it
    while open (the directory is made if missing); on exit the file being taken is finished."""

    name = "inbox"

    def __init__(self, inbox: Path, source: str, *, catalog: Any = None, max_size: int = 1024 * 1024,
                 pattern: Sequence[str] = ("*.xml", "*.avro", "*.csv", "*.dat", "*.zip"),
                 state_dir: Path | None = None) -> None:
        self.inbox, self.source, self.catalog, self.max_size, self.pattern = inbox, source, catalog, max_size, pattern
        self.checkpoints = None if state_dir is None else progress_dir(state_dir)

    @contextlib.asynccontextmanager
    async def open(self, intake: Intake, gate: Gatekeeper) -> AsyncIterator[None]:
        self.inbox.mkdir(parents=True, exist_ok=True)
        poller = DirectorySource(self.inbox, intake, pattern=self.pattern, catalog=self.catalog,
                                 max_size=self.max_size, source=self.source, checkpoints=self.checkpoints)
        done = asyncio.Event()
        task = asyncio.get_running_loop().create_task(poller.run(done))
        try:
            yield
        finally:
            done.set()  # the file being taken is finished first
            await asyncio.gather(task, return_exceptions=True)
