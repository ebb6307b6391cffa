"""`renkei ingest FILE`: one bulk file through the bus's intake, with progress and a summary.

    renkei ingest extract.avro --config renkei.toml
    renkei ingest changes.csv --config renkei.toml --source kiban --format csv
    renkei ingest changes.dat --kind jumin.idou --broker-url amqp://…   # a fixed-width file

The file (an Avro object container file, or the file-linkage CSV or fixed-width file of a kind:
docs/file-layouts.md) is checked as a whole, then its records go through the intake of the bus
of CONFIG — the same validation, pseudonyms, seen ids and audit as every source — in batches,
streamed (adapters.sources.bulk, adapters.sources.ingest): memory stays bounded whatever the
file's size. Only the intake runs here; the bus's `renkei run` routes and delivers.

On a terminal a bar shows records, rate and ETA; otherwise a plain line every few seconds.
The end is a summary: accepted, duplicate, rejected, and the rejected records by issue code
and field with their row (CSV: the header is row 1; fixed-width: from 1) or record number
(Avro: from 0) — never a value. A bad record never stops the file.

Killed (even kill -9) or interrupted, the command run again on the same file continues from
its checkpoint in ``<state_dir>/ingest`` (`--restart` starts over); records sent again answer
"duplicate", nothing is applied twice. `renkei status` and the console show the progress.

Exit codes: 0 every record accepted or a duplicate; 1 the broker cannot be used (run again to
continue), or another process is taking the same file; 2 a configuration or usage error; 3 the
file was rejected as a whole, or some of its records were (the summary says which).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import click

from adapters.sources.bulk import BulkFile, Format, format_of, open_bulk
from adapters.sources.csv_inbox import CsvRefused
from adapters.sources.inbox_files import not_regular
from adapters.sources.ingest import BATCH, WINDOW, IngestBusy, Ingester, IngestProgress, progress_dir
from bus.cli.config import CONFIG_ERROR, RUNTIME_ERROR, fail, load_settings
from bus.errors import BrokerError, ConfigError
from bus.heap import settle_heap
from bus.logs import configure_logging
from bus.settings import Settings

__all__ = ["ingest", "summary_lines"]

REJECTED = 3
_SHOWN_ROWS = 10


@click.command("ingest")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path),
              help="renkei.toml of the bus (default: RENKEI_* environment and defaults).")
@click.option("--format", "fmt", type=click.Choice(["avro", "csv", "fixed"]),
              help="The file's format (default: from its suffix: .avro, .csv, .dat).")
@click.option("--kind", help="The records' kind (Avro: default its renkei.kind metadata; CSV and fixed-width: "
                             "default jumin.idou).")
@click.option("--source", help="The source the records come from (a [sources.<id>] when [sources] is configured; "
                               "default: ingest).")
@click.option("--broker-url", envvar="RENKEI_BROKER_URL", metavar="URL",
              help="The bus's RabbitMQ (default: CONFIG's; none: the embedded broker in its state_dir).")
@click.option("--batch", type=click.IntRange(1, 10_000), default=BATCH, show_default=True,
              help="Records per batch (one confirmed publish and one audit flush each).")
@click.option("--window", type=click.IntRange(1, 16), default=WINDOW, show_default=True,
              help="Batches in flight at once.")
@click.option("--restart", is_flag=True, help="Start from the first record, not from the file's checkpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on standard output.")
@click.option("--every", type=click.FloatRange(min=0.1), default=2.0, show_default=True, metavar="SECONDS",
              help="Off a terminal: a progress line every SECONDS.")
def ingest(file: Path, config: Path | None, fmt: Format | None, kind: str | None, source: str | None,
           broker_url: str | None, batch: int, window: int, restart: bool, as_json: bool, every: float) -> None:
    """Submit every record of FILE (Avro, CSV or fixed-width) through the bus's intake.

    \b
    Exit codes:
      0  every record accepted or a duplicate
      1  the broker cannot be used (run the command again: it continues where it stopped),
         or another process is taking the same file
      2  a configuration or usage error
      3  the file was rejected as a whole, or some of its records were (see the summary)"""
    settings = load_settings("ingest", config)
    if broker_url:
        settings = dataclasses.replace(settings, bus=dataclasses.replace(settings.bus, broker_url=broker_url))
    fmt = fmt or format_of(file)
    if fmt is None:
        fail("ingest", f"{file}: cannot tell the format from the suffix {file.suffix!r}; give --format "
                       "avro, csv or fixed")
    if not file.exists():
        fail("ingest", f"{file}: no such file")
    what = not_regular(file)
    if what is not None and not what.startswith("a hard link"):
        fail("ingest", f"{file}: {what}; only a regular file is read")
    source = source or ("ingest" if not settings.sources else "")
    if settings.sources and source not in settings.sources:
        fail("ingest", f"--source must name one of the configured [sources] ({', '.join(sorted(settings.sources))})")
    configure_logging(settings.logging.format, "WARNING")  # the progress and the summary are the output
    job = _Job(settings, file, fmt, kind, source, batch=batch, window=window, restart=restart, every=every)
    code = asyncio.run(job.main())
    if job.result is not None:
        if as_json:
            click.echo(json.dumps(job.result, ensure_ascii=False, indent=1))
        else:
            for line in summary_lines(job.result):
                click.echo(line)
    raise SystemExit(code)


class _Job:
    def __init__(self, settings: Settings, file: Path, fmt: Format, kind: str | None, source: str, *,
                 batch: int, window: int, restart: bool, every: float) -> None:
        self.settings, self.file, self.fmt, self.kind, self.source = settings, file, fmt, kind, source
        self.batch, self.window, self.restart, self.every = batch, window, restart, every
        self.result: dict[str, Any] | None = None

    async def main(self) -> int:
        from bus.app import Bus, BusParts

        try:
            bus = Bus(self.settings)  # the catalog and the routes: a ConfigError says file:line
        except ConfigError as exc:
            _say(f"error: {exc}")
            return CONFIG_ERROR
        try:
            bulk = await asyncio.to_thread(open_bulk, self.file, self.fmt, bus.catalog, self.kind)
        except (CsvRefused, ConfigError) as exc:
            code = exc.code if isinstance(exc, CsvRefused) else "R220"
            self.result = {"file": self.file.name, "status": "rejected", "issues": [{"code": code,
                                                                                     "message": str(exc)}]}
            await bus.stop()
            return REJECTED
        try:
            await bus.start(BusParts(router=False, deliverers=False, sources=False))
        except BrokerError as exc:
            _say(f"error: cannot use the broker: {exc}")
            await bus.stop()
            return RUNTIME_ERROR
        settle_heap()  # as `renkei run`: everything kept is loaded; collect less often (bus.heap)
        try:
            return await self._ingest(bus.intake, bulk)
        finally:
            await bus.stop()

    async def _ingest(self, intake: Any, bulk: BulkFile) -> int:
        shown = _Shown(f"ingesting {bulk.path.name}", bulk.total, sys.stderr, self.every)
        ingester = Ingester(intake, source=self.source, checkpoints=progress_dir(self.settings.bus.state_dir),
                            batch=self.batch, window=self.window, on_progress=shown.update, restart=self.restart)
        started = time.monotonic()
        try:
            with shown:
                done = await ingester.run(bulk)
        except BrokerError as exc:
            _say(f"error: the broker failed: {exc}; run the command again to continue from record "
                 f"{ingester.resume_point(bulk).done}")
            return RUNTIME_ERROR
        except IngestBusy as busy:
            _say(f"error: {busy}")
            return RUNTIME_ERROR
        except (OSError, ValueError) as exc:
            _say(f"error: the file cannot be read further ({type(exc).__name__}); run again to continue")
            return RUNTIME_ERROR
        self.result = _result(done, bulk, time.monotonic() - started)
        return REJECTED if done.rejected else 0


class _Shown:
    """A rich bar on a terminal, a plain line every `every` seconds elsewhere (standard error)."""

    def __init__(self, what: str, total: int, out: TextIO, every: float) -> None:
        self.what, self.total, self.out, self.every = what, total, out, every
        self.last = 0.0
        self.bar: Any = None
        self.task: Any = None
        self.latest: IngestProgress | None = None

    def __enter__(self) -> _Shown:
        if self.out.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TaskProgressColumn(), TextColumn("{task.fields[rate]} records/s"),
                                TimeRemainingColumn(), console=Console(file=self.out))
            self.bar.start()
            self.task = self.bar.add_task(self.what, total=self.total, rate="-")
        self.last = time.monotonic()
        return self

    def update(self, p: IngestProgress) -> None:
        self.latest = p
        if self.bar is not None:
            self.bar.update(self.task, completed=p.done, rate=f"{p.rate:.0f}")
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(progress_line(self.what, p), file=self.out, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif self.latest is not None:
            print(progress_line(self.what, self.latest), file=self.out, flush=True)


def progress_line(what: str, p: IngestProgress) -> str:
    eta = "-" if p.eta is None else _duration(p.eta)
    return (f"{what}: {p.done}/{p.total} records, {p.rate:.0f}/s, ETA {eta}; accepted {p.accepted}, "
            f"duplicate {p.duplicate}, rejected {p.rejected}")


def _duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _result(p: IngestProgress, bulk: BulkFile, seconds: float) -> dict[str, Any]:
    where = "record" if bulk.format == "avro" else "row"
    by: dict[str, list[int]] = {}
    said: dict[str, str] = {}
    for entry in p.rejected_records:
        for i in entry["issues"]:
            what = f"{i.get('code')} {i.get('path') or '/'}"
            if not by.get(what) or by[what][-1] != entry[where]:
                by.setdefault(what, []).append(entry[where])
            said.setdefault(what, str(i.get("message", "")))  # the issue's message: where and why, no value
    rejected = [{"code": what.split(" ", 1)[0], "field": what.split(" ", 1)[1], "count": n,
                 f"{where}s": by.get(what, []), "message": said.get(what, "")}
                for what, n in sorted(p.rejected_by.items())]
    return {"file": bulk.path.name, "format": bulk.format, "kind": bulk.kind, "source": p.source,
            "status": "rejected" if p.rejected else "processed", "records": bulk.total,
            "counts": p.counts(), "resumed_from": p.resumed_from, "seconds": round(seconds, 3),
            "records_per_second": round((p.done - p.resumed_from) / max(seconds, 1e-9), 1), "rejected": rejected}


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The summary a person reads: counts, then the rejected by code and field with where (no value)."""
    if "counts" not in result:
        [issue] = result["issues"]
        return [f"renkei ingest: {result['file']}: rejected as a whole: {issue['code']} {issue['message']}"]
    c = result["counts"]
    lines = [f"renkei ingest: {result['file']} ({result['format']}, {result['kind']}, source {result['source']}): "
             f"{result['records']} records, {result['seconds']:.1f} s ({result['records_per_second']:.0f}/s)"
             + (f", resumed at record {result['resumed_from']} (records taken after the last checkpoint "
               "answer duplicate)" if result["resumed_from"] else ""),
             f"  accepted {c['accepted']}, duplicate {c['duplicate']}, rejected {c['rejected']}"]
    for r in result["rejected"]:
        where = "records" if "records" in r else "rows"
        places = r[where][:_SHOWN_ROWS]
        more = ", …" if r["count"] > len(places) else ""
        lines.append(f"  rejected {r['code']} at {r['field']}: {r['count']} ({where} "
                     f"{', '.join(map(str, places))}{more})" + (f": {r['message']}" if r["message"] else ""))
    return lines


def _say(text: str) -> None:
    click.echo(f"renkei ingest: {text}", err=True)
