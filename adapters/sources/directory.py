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
  namespace ``renkei.<kind with _>.v<N>``). Records are counted first (a file over
  `max_records` is rejected untouched), then each is submitted on its own as schemaless
  Avro — re-encoded with the kind's schema when a catalog is given (the file's schema is
  resolved to it), else with the file's own schema. Progress is reported every
  `progress_every` records and at least every `progress_seconds` (callback and a structlog
  event), so a slow batch shows progress long before its 10,000th record. The result file has the counts
  and the issues of the first 1,000 rejected records.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import fastavro
import structlog

from adapters.sources.inbox_files import Refused, not_regular, open_regular
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
            if path.suffix.lower() == ".avro":
                result = await self._take_batch(path)
            elif path.suffix.lower() == ".xml":
                result = await self._take_message(path)
            elif path.suffix.lower() in (".csv", ".dat", ".zip"):  # .zip: a ぴったりサービス batch
                result = await self._take_csv(path)
            else:
                issue = {"code": "R220", "message": "unknown file type: expected .xml, .avro, .csv, .dat or .zip"}
                result = FileResult(path.name, "rejected", {"rejected": 1}, detail={"issues": [issue]})
        except BrokerError as exc:
            log.warning("directory.broker_unavailable", file=path.name, error=type(exc).__name__)
            return FileResult(path.name, "retry", {})
        except Refused as exc:  # swapped for something else between the check and the open
            return self._refuse(path, str(exc))
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

    async def _take_csv(self, path: Path) -> FileResult:
        """A CSV (.csv) or fixed-width (.dat) file of the kind's layout, each row a change; a ぴったりサービス
        batch (.zip, adapters.sources.pittari), each application a message."""
        from adapters.sources.csv_inbox import take_csv
        from adapters.sources.fixed_inbox import take_fixed
        from adapters.sources.pittari import take_pittari

        if self.catalog is None:
            from bus.catalog import Catalog

            self.catalog = Catalog.load()
        take = {".dat": take_fixed, ".zip": take_pittari}.get(path.suffix.lower(), take_csv)
        status, counts, detail = await take(path, self._submit, self.catalog, self.kind, self.max_records)
        return FileResult(path.name, "rejected" if status == "rejected" else "processed", counts, detail=detail)

    async def _take_batch(self, path: Path) -> FileResult:
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        rejected: list[dict[str, Any]] = []
        try:
            total = _count_records(path)
        except Refused:
            raise
        except Exception as exc:  # any unreadable container: the whole file is rejected
            msg = f"not a readable Avro container file ({type(exc).__name__})"
            return _broken(path, counts, rejected, "R212", msg)
        if total > self.max_records:
            msg = f"batch holds {total} records, more than the cap of {self.max_records}"
            return _broken(path, counts, rejected, "R100", msg)
        progress = Progress(path.name, 0, total)
        reported = time.monotonic()
        try:
            with open_regular(path) as fh:
                records, kind, encode = self._open_batch(fh)
                for index, record in enumerate(records):
                    answer = await self._submit(encode(record), "application/avro", kind)
                    counts[answer.status] += 1
                    if answer.status == "rejected" and len(rejected) < _MAX_DETAILED:
                        rejected.append({"record": index, "issues": answer.to_dict()["issues"]})
                    progress.done += 1
                    now = time.monotonic()  # every N records, and at least every few seconds of a slow batch
                    if (progress.done % self.progress_every == 0 or progress.done == total
                            or now - reported >= self.progress_seconds):
                        self._report(progress, counts)
                        reported = now
        except (BrokerError, asyncio.CancelledError, Refused):
            raise
        except ConfigError as exc:
            return _broken(path, counts, rejected, "R220", str(exc))
        except Exception as exc:  # truncated or corrupt blocks after some records went in
            msg = f"Avro container unreadable at record {progress.done} ({type(exc).__name__})"
            return _broken(path, counts, rejected, "R210", msg)
        status: Literal["processed", "rejected"] = "rejected" if counts["rejected"] else "processed"
        detail = {"kind": kind, "records": total, "rejected_records": rejected}
        return FileResult(path.name, status, counts, detail=detail)

    def _open_batch(self, fh: io.BufferedReader) -> tuple[Any, str, Callable[[Any], bytes]]:
        head = fastavro.reader(fh)
        kind = self.kind or _text(head.metadata.get("renkei.kind")) or self._kind_of(head.writer_schema)
        if kind is None:
            raise ConfigError("the file does not say its kind: set `kind`, or write renkei.kind metadata")
        if self.catalog is None:
            schema = head.writer_schema
            return head, kind, lambda record: _schemaless(schema, record)
        ks = self.catalog.get(kind)
        fh.seek(0)
        resolved = fastavro.reader(fh, reader_schema=ks.avro_schema)
        encode: Callable[[Any], bytes] = ks.to_avro
        return resolved, kind, encode

    def _kind_of(self, schema: Any) -> str | None:
        name = schema.get("name", "") if isinstance(schema, dict) else ""
        parts = name.split(".")
        if len(parts) < 4 or parts[0] != "renkei" or not parts[-2].startswith("v"):
            return None
        flat = parts[1]
        if self.catalog is not None:
            for kind in self.catalog.kinds():
                if kind.replace(".", "_") == flat:
                    return str(kind)
        return flat.replace("_", ".", 1)

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


def _count_records(path: Path) -> int:
    with open_regular(path) as fh:
        return sum(block.num_records for block in fastavro.block_reader(fh))


def _schemaless(schema: Any, record: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def _broken(
    path: Path, counts: dict[str, int], rejected: list[dict[str, Any]], code: str, message: str
) -> FileResult:
    detail = {"issues": [{"code": code, "message": message}], "rejected_records": rejected}
    return FileResult(path.name, "rejected", counts, detail=detail)


class Inbox:
    """An inbox directory as a bus source (bus.ports.Source): a `DirectorySource` polling it
    while open (the directory is made if missing); on exit the file being taken is finished."""

    name = "inbox"

    def __init__(self, inbox: Path, source: str, *, catalog: Any = None, max_size: int = 1024 * 1024,
                 pattern: Sequence[str] = ("*.xml", "*.avro", "*.csv", "*.dat", "*.zip")) -> None:
        self.inbox, self.source, self.catalog, self.max_size, self.pattern = inbox, source, catalog, max_size, pattern

    @contextlib.asynccontextmanager
    async def open(self, intake: Intake, gate: Gatekeeper) -> AsyncIterator[None]:
        self.inbox.mkdir(parents=True, exist_ok=True)
        poller = DirectorySource(self.inbox, intake, pattern=self.pattern, catalog=self.catalog,
                                 max_size=self.max_size, source=self.source)
        done = asyncio.Event()
        task = asyncio.get_running_loop().create_task(poller.run(done))
        try:
            yield
        finally:
            done.set()  # the file being taken is finished first
            await asyncio.gather(task, return_exceptions=True)
