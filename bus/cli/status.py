"""`renkei status`: per destination and per source, what the bus holds and has done.

    renkei status --config renkei.toml             # a table
    renkei status --config renkei.toml --json      # stable JSON (schema renkei.status/2)
    renkei status --config renkei.toml --watch 2   # refresh every 2 s, with rates

Read-only and safe while the bus runs in another process; what each figure comes from is
in bus/status/. Counts and names only: never a message's content.

Exit codes: 0 everything was seen; 1 something could not be seen (the broker unreachable or
no bus has run with the state directory, a store that cannot be read, deliverers running
outside the state directories read) — the report says what, under "could not see"; 2 a
configuration or usage error.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from bus.cli.config import RUNTIME_ERROR, fail, load_settings, route_destinations
from bus.cli.tables import columns
from bus.errors import ConfigError
from bus.settings import Settings
from bus.status import QueueFigures, StatusReport, gather_status, with_rates

__all__ = ["render_json", "render_table", "status"]

_CLEAR = "\x1b[H\x1b[2J"


@click.command("status")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path),
              help="renkei.toml of the bus (default: RENKEI_* environment and defaults).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one document; one per line with --watch).")
@click.option("--watch", "watch", type=click.FloatRange(min=0.2), metavar="SECONDS",
              help="Refresh every SECONDS until interrupted; adds delivered and accepted rates.")
@click.option("--state-dir", "state_dirs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Another state directory of this bus (a deliverer's volume), repeatable: its counters, "
                   "dead letters, parked and held changes are added.")
@click.option("--wide", is_flag=True,
              help="Every column (consumers, routed, duplicate, attempts, retried too); default: fits 100 columns.")
def status(config: Path | None, as_json: bool, watch: float | None, state_dirs: tuple[Path, ...],
           wide: bool) -> None:
    """Show, per destination, ready / in flight / consumers / delivered / retrying / held /
    dead, the dead letters by destination and code, per source, accepted / duplicate /
    rejected, and the bulk files being ingested (done of total, rate, ETA), on the embedded
    broker or RabbitMQ.

    \b
    Exit codes:
      0  everything was seen
      1  something could not be seen: the broker is unreachable or no bus has run with
         the state directory, a store cannot be read, or deliverers run outside the state
         directories read (add theirs with --state-dir); the report says what
      2  a configuration or usage error"""
    settings = load_settings("status", config)
    destinations = route_destinations("status", settings)
    _check_destinations(settings)
    for extra in state_dirs:
        if not extra.is_dir():
            fail("status", f"--state-dir {extra}: no such directory")
    if watch is None:
        report = _gather(settings, destinations, state_dirs)
        click.echo(render_json(report) if as_json else render_table(report, wide=wide))
        if not report.complete:
            raise SystemExit(RUNTIME_ERROR)
        return
    clear = not as_json and sys.stdout.isatty()
    previous: StatusReport | None = None
    try:
        while True:
            started = time.monotonic()
            report = with_rates(_gather(settings, destinations, state_dirs), previous)
            if as_json:
                click.echo(json.dumps(report.to_dict(), ensure_ascii=False, separators=(",", ":")))
            else:
                click.echo((_CLEAR if clear else "") + render_table(report, watching=watch, wide=wide))
            previous = report
            time.sleep(max(0.0, watch - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return


def _check_destinations(settings: Settings) -> None:
    """A typo in a destination's options (`concurency`) is the configuration error it is at
    `renkei run`, not a report that looks fine: exit 2 naming it."""
    from adapters.registry import check_sink

    for name, destination in settings.destinations.items():
        if destination.transport:
            try:
                check_sink(destination.transport, {"destination": name, **destination.options})
            except ConfigError as exc:
                fail("status", str(exc))


def _gather(settings: Settings, destinations: Sequence[str], state_dirs: Sequence[Path]) -> StatusReport:
    try:
        return asyncio.run(gather_status(settings, destinations, state_dirs))
    except ConfigError as exc:  # e.g. an unknown broker URL scheme
        fail("status", str(exc))


def render_json(report: StatusReport) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=2)


def render_table(report: StatusReport, *, watching: float | None = None, wide: bool = False) -> str:
    """The terminal form: a header line, destinations, dead letters, queues, sources,
    processes, notes. The destinations fit 100 columns unless `wide` (every column)."""
    data = report.to_dict()
    lines = [f"renkei status  {data['at']}  broker {report.broker} ({report.where})"
             + (f"  every {watching:g} s" if watching else "")]
    header = ["DESTINATION", "SINK", "READY", "IN FLIGHT", "CONSUMERS", "ROUTED", "DELIVERED", "DUPLICATE",
              "ATTEMPTS", "RETRIED", "RETRYING", "HELD", "DEAD", "RATE/s", "OLDEST PARKED"]
    rows = [[d["name"], d["sink"] or "(none)", d["ready"], d["in_flight"], d["consumers"], d["routed"],
             d["delivered"], d["duplicate"], d["attempts"], d["retried"], d["retrying"], d["held"], d["dead"],
             d["rate_per_second"], _parked_age(d)] for d in data["destinations"]]
    if not wide:  # the columns an operator reads first; --wide has the rest
        keep = [i for i, name in enumerate(header) if name not in _WIDE_ONLY]
        header, rows = [header[i] for i in keep], [[row[i] for i in keep] for row in rows]
    lines += ["", *columns(header, rows, empty="(no destinations)", text=2)]
    lines += ["", _dead_line(data["dead_letters"])]
    lines += ["", *columns(["QUEUE", "READY", "IN FLIGHT", "CONSUMERS"], [_queue_row(report.intake)])]
    lines += ["", *columns(
        ["SOURCE", "ACCEPTED", "DUPLICATE", "REJECTED", "FORBIDDEN", "RATE/s", "TOKENS USED"],
        [[s["name"], s["accepted"], s["duplicate"], s["rejected"], s["forbidden"], s["rate_per_second"],
          _tokens(s["tokens"])] for s in data["sources"]],
        empty="(no source has sent anything yet)", text=1,
    )]
    if data["ingests"]:
        lines += ["", *columns(
            ["BULK FILE", "SOURCE", "STATE", "DONE", "OF", "RATE/s", "ETA", "ACCEPTED", "DUPLICATE", "REJECTED"],
            [[i["file"], i["source"], i["state"], i["done"], i["total"], i["rate_per_second"],
              _eta(i["eta_seconds"]), i["accepted"], i["duplicate"], i["rejected"]] for i in data["ingests"]],
            text=3,
        )]
    lines.append("")
    if report.processes:
        for p in data["processes"]:
            where = f", intake {p['intake']}" if p["intake"] else ""
            lines.append(f"bus process {p['pid']}: role {p['role']}{where}, up since {p['started']}")
    else:
        lines.append("no bus process of this state_dir is running")
    lines.append("not reported (- here, null in --json):")
    lines += [f"  {_label(k)}: {why}" for k, why in data["not_reported"].items()]
    lines += [f"note: {n}" for n in report.notes]
    if report.unseen:
        lines.append("could not see (exit 1):")
        lines += [f"  {what}" for what in report.unseen]
    return "\n".join(lines)


def _eta(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _tokens(used: dict[str, int]) -> str | None:
    """``sha256:3f2a…(12 hex) 120, sha256:… 3``: how often each of a source's tokens was used
    (an old token at 0 since the rotation can go); None ('-') for a source without tokens."""
    return ", ".join(f"{token} {n}" for token, n in used.items()) or None


def _dead_line(dead: dict[str, Any]) -> str:
    """One line: the unresolved dead letters, by destination and by code (counts only)."""
    if dead["total"] is None:
        return "dead letters: - (the delivery store could not be read)"
    if not dead["total"]:
        return "dead letters: none"
    by_destination = ", ".join(f"{name} {n}" for name, n in dead["by_destination"].items())
    by_code = ", ".join(f"{code} {n}" for code, n in dead["by_code"].items())
    return (f"dead letters: {dead['total']} unresolved ({by_destination}; codes {by_code}), "
            f"oldest {_age(dead['oldest_age_seconds'])} ago: renkei dead list")


#: the destination columns only `--wide` shows
_WIDE_ONLY = ("CONSUMERS", "ROUTED", "DUPLICATE", "ATTEMPTS", "RETRIED")


def _parked_age(destination: dict[str, Any]) -> str | None:
    """How long the longest-parked resident has waited; empty when no one is parked (not "0s")."""
    age = destination["oldest_parked_age_seconds"]
    parked = any(destination.get(k) for k in ("retrying", "held", "dead"))
    return "" if age == 0 and not parked else _age(age)


def _age(seconds: float | None) -> str | None:
    """12s, 4m, 3h, 2d (whole units, rounded down); None stays None ('-')."""
    if seconds is None:
        return None
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _queue_row(q: QueueFigures) -> list[object]:
    return [q.queue + ("" if q.declared else " (not declared)"), q.ready, q.in_flight, q.consumers]


def _label(key: str) -> str:
    return {"oldest_age_seconds": "oldest message", "oldest_parked_age_seconds": "oldest parked",
            "rate_per_second": "rate"}.get(key, key.replace("_", " "))
