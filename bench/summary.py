"""One table of issue 10's figures from the result files: figure, measured, target, met?

    python -m bench.summary                 # reads bench/results/*.json, writes summary.json

Each row is read from the file of the benchmark that measures it (a row whose file is missing
says "not run"; the Avro file row says "not yet available" until bench/ingest.py exists). The
summary keeps each file's commit and load average beside its row, so a figure short on a busy
machine can be told from one short on an idle one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench import report

__all__ = ["Row", "main", "rows"]

Row = dict[str, Any]
GROWTH_LIMIT = 1.2  # "flat (±20 %)": the largest CPU per change over the smallest


def _read(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _row(figure: str, measured: str, target: str, met: bool | None, source: dict[str, Any] | None,
         file: str) -> Row:
    load = None
    if source is not None:
        load = (source.get("machine") or {}).get("load_average") or (source.get("machine") or {}).get(
            "load_average_end")
    return {"figure": figure, "measured": measured, "target": target, "met": met, "file": file,
            "commit": (source or {}).get("commit"), "timestamp": (source or {}).get("timestamp"),
            "load_average": load}


def _missing(figure: str, target: str, file: str, why: str = "not run") -> Row:
    return _row(figure, why, target, None, None, file)


def _largest(result: dict[str, Any], mode: str | None = None) -> dict[str, Any]:
    runs = [r for r in result["runs"] if mode is None or r.get("mode", mode) == mode]
    return max(runs, key=lambda r: r["changes"])


def _growth(figure: str, result: dict[str, Any] | None, file: str) -> Row:
    target = f"flat (max/min <= {GROWTH_LIMIT})"
    runs = [r for r in (result or {}).get("runs", []) if r.get("mode", "fed") == "fed"]
    if result is None or len(runs) < 2:
        return _missing(figure, target, file, "not run" if result is None else "one size only")
    runs.sort(key=lambda r: r["changes"])
    cpu = [r["cpu_ms_per_change"] for r in runs]
    growth = max(cpu) / min(cpu)
    sizes = " / ".join(f"{r['changes']:,}: {r['cpu_ms_per_change']:.2f} ms, {r['rss_mb']:.0f} MB" for r in runs)
    return _row(figure, f"x{growth:.2f} ({sizes})", target, growth <= GROWTH_LIMIT, result, file)


def rows(results: Path = report.RESULTS) -> list[Row]:
    out: list[Row] = []
    demo = _read(results, "demo")
    if demo is None:
        out.append(_missing("renkei demo (HTTP simulators), changes/s", ">= 1,000", "demo.json"))
    else:
        for r in sorted(demo["runs"], key=lambda r: r["changes"]):
            out.append(_row(f"renkei demo (HTTP simulators), changes/s, N={r['changes']:,}",
                            f"{r['changes_per_s']:,.1f} ({r['cpu_ms_per_change']:.2f} ms CPU/change)",
                            f">= {demo['target']['changes_per_s']:,.0f}",
                            r["changes_per_s"] >= demo["target"]["changes_per_s"], demo, "demo.json"))
    embedded = _read(results, "embedded")
    if embedded is None:
        out.append(_missing("embedded broker, null sinks, changes/s", ">= 3,000", "embedded.json"))
    else:
        r = _largest(embedded, "fed")
        goal = embedded["target"]["changes_per_s"]
        out.append(_row(f"embedded broker, null sinks, changes/s, N={r['changes']:,}",
                        f"{r['changes_per_s']:,.1f} ({r['cpu_ms_per_change']:.2f} ms CPU/change)",
                        f">= {goal:,}", r["changes_per_s"] >= goal, embedded, "embedded.json"))
    out.append(_growth("CPU per change growth, embedded, null sinks", embedded, "embedded.json"))
    out.append(_growth("CPU per change growth, RabbitMQ, null sinks", _read(results, "embedded-rabbitmq"),
                       "embedded-rabbitmq.json"))
    latency = _read(results, "run_latency")
    if latency is None:
        out.append(_missing("renkei run, offered load to the HTTP intake: p99 accepted -> delivered",
                            "< 50 ms at 200/s, < 250 ms at 1,000/s", "run_latency.json"))
    else:
        for r in latency["runs"]:
            goal = r["target_p99_ms"]
            out.append(_row(f"renkei run, {r['rate_offered']:,}/s offered for {r['seconds_offered']:g} s: "
                            "p99 accepted -> delivered",
                            f"{r['latency_ms']['p99']:,.1f} ms (answered {r['accepted_rate']:,.0f}/s"
                            + (f", {r['not_accepted']:,} not accepted)" if r.get("not_accepted") else ")"),
                            f"< {goal:g} ms" if goal else "none", r["passed"] if goal else None,
                            latency, "run_latency.json"))
    out.append(_ingest(results))
    pipeline = _read(results, "pipeline")
    versus = (pipeline or {}).get("versus_faststream")
    if pipeline is None or versus is None:
        out.append(_missing("RabbitMQ router vs FastStream, same 5 confirmed publishes", ">= 2x", "pipeline.json",
                            "not run" if pipeline is None else "run without --faststream"))
    else:
        out.append(_row("RabbitMQ router vs FastStream, same 5 confirmed publishes",
                        f"x{versus['ratio']:.2f} (CPU x{versus['cpu_ratio']:.2f}; renkei "
                        f"{pipeline['renkei']['messages_per_s']:,.0f} msg/s)",
                        f">= {versus['target']:g}x", versus["passed"], pipeline, "pipeline.json"))
    return out


def _ingest(results: Path) -> Row:
    figure, target = "Avro file, routed and delivered (null sinks)", "1,000,000 records < 5 min, RSS < 300 MB"
    if not (report.ROOT / "bench" / "ingest.py").exists():
        return _missing(figure, target, "ingest.json", "not yet available (bench/ingest.py is not on main)")
    result = _read(results, "ingest")
    if result is None:
        return _missing(figure, target, "ingest.json")
    runs = result.get("runs") or [result]
    r = max(runs, key=lambda x: x.get("records", 0))
    records, rate = r.get("records", 0), r.get("records_per_s", 0.0)
    rss = r.get("peak_rss_mb_all_processes", r.get("peak_rss_mb", r.get("rss_mb", 0.0)))  # every bus process
    seconds = r.get("seconds") or (records / rate if rate else float("inf"))
    minutes = seconds / 60
    met = records >= 1_000_000 and minutes < 5 and rss < 300
    return _row(f"{figure}, {records:,} records", f"{rate:,.0f} records/s ({minutes:.1f} min), RSS {rss:.0f} MB",
                target, met if records >= 1_000_000 else None, result, "ingest.json")


def growth_table(results: Path = report.RESULTS) -> str:
    """Issue 10 item 6's table (Markdown): CPU per change and RSS by size, embedded and RabbitMQ."""
    lines = ["| broker | changes | deliveries | CPU ms/change | RSS MB | changes/s | load (1 min) | commit |",
             "|---|---|---|---|---|---|---|---|"]
    for broker, name in (("embedded", "embedded"), ("RabbitMQ", "embedded-rabbitmq")):
        result = _read(results, name)
        for r in sorted((result or {}).get("runs", []), key=lambda r: r["changes"]):
            if r.get("mode", "fed") != "fed":
                continue
            lines.append(f"| {broker} | {r['changes']:,} | {r['deliveries']:,} | {r['cpu_ms_per_change']:.3f} | "
                         f"{r['rss_mb']:.0f} | {r['changes_per_s']:,.1f} | {r['load_average']['start'][0]:.1f} | "
                         f"{(result or {}).get('commit') or '-'} |")
    return "\n".join(lines)


def render(table: list[Row]) -> str:
    width = max(len(r["figure"]) for r in table)
    measured = max(len(r["measured"]) for r in table)
    target = max(len(r["target"]) for r in table)
    lines = [f"{'figure':<{width}}  {'measured':<{measured}}  {'target':<{target}}  met?"]
    lines.append("-" * len(lines[0]))
    for r in table:
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        lines.append(f"{r['figure']:<{width}}  {r['measured']:<{measured}}  {r['target']:<{target}}  {met}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.summary", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=report.RESULTS, help="the folder of the result files")
    parser.add_argument("--out", type=Path, help="default: RESULTS/summary.json")
    parser.add_argument("--growth", action="store_true", help="print only the growth table (Markdown)")
    args = parser.parse_args(argv)
    if args.growth:
        print(growth_table(args.results))
        return 0
    table = rows(args.results)
    report.write(args.out or args.results / "summary.json", {"benchmark": "summary", "rows": table})
    print(render(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
