"""A bulk file through the whole bus: an Avro object container file of N synthetic changes
ingested (adapters.sources.ingest, as the inbox and `renkei ingest` take it) while the router
and a null sink per addressed destination route and deliver (issue 10's "1,000,000 records
routed and delivered to the default destinations in < 5 min, RSS < 300 MB" row).

    python -m bench.ingest                     # 10,000 records
    python -m bench.ingest --records 100000    # one size (several: one fresh process each)
    python -m bench.ingest --full              # 1,000,000 records
    python -m bench.ingest --intake-only       # the ingest alone (no router, no deliverers): the
                                               # changes wait in the intake queue; bench/results/ingest-intake.json
    python -m bench.ingest --processes 1       # the whole bus in this process (default 3, below)

The file is written first, by a child process (valid `jumin.idou` records of the synthetic
registry, seed `--seed`), which also works out from the shipped route table what every
destination must receive; so this process's peak RSS is the bus's and the ingest's alone.
Then `bus.app.Bus` runs as `renkei run` assembles it (intake, router, deliverers, audit,
counters, logs) on the embedded broker in a fresh state directory: by default as 3 processes
(`--processes`; bus.demo_procs, as bench.embedded and `renkei demo` run it), this one taking the
file through the intake as `renkei ingest` does, the router in a second and the deliverers in a
third, as `renkei run --role router` and `--role deliver` would. The clock runs from the file's
first read (its whole-file check included) until every record is answered and `Bus.wait_idle`
sees every queue empty. CPU is every bus process's (`time.process_time` here, every thread; the
others' from ready until stopped). RSS is this process's, sampled every 0.2 s (`peak_rss_mb`),
and the peaks of every bus process summed (`peak_rss_mb_all_processes`, what the target is
about); `peak_held` is the most records the ingest held at once. Every sink must have received
exactly what the routes say, or the run fails. Only counts are printed or written: no record
leaves the child process's file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import commit as checkout_commit
from bench.report import inline_writes_args, inline_writes_option

__all__ = ["main", "make_file", "run_one"]

DEFAULT_RECORDS = 10_000
FULL_RECORDS = 1_000_000
KIND = "jumin.idou"
BENCH_KEY = b"renkei-bench-pseudonym-key-not-a-secret"
DEFAULT_OUT = Path("bench/results/ingest.json")
INTAKE_OUT = Path("bench/results/ingest-intake.json")
ROOT = Path(__file__).resolve().parents[1]
TARGET = {"records": FULL_RECORDS, "seconds": 300, "rss_mb": 300}


def make_file(path: Path, records: int, seed: int) -> dict[str, int]:
    """Write `records` changes to the Avro file at `path`; destination → changes it must receive."""
    import fastavro

    from bus.catalog import Catalog
    from bus.masking import Pseudonymizer
    from bus.paths import routes_dir
    from bus.routing.router import RouteTable
    from bus.synthetic.samples import sample_records

    catalog = Catalog.load()
    routes = RouteTable.load(routes_dir(), catalog)
    ids = Pseudonymizer(BENCH_KEY)
    expected: Counter[str] = Counter()

    def counted() -> Any:
        for r in sample_records(KIND, catalog, seed=seed, n=records):
            message_id = ids.message_id(r["municipality_code"], r["address_number"], int(r["history_number"]))
            for match in routes.route(r, r["municipality_code"], message_id=message_id):
                expected[match.route.destination] += 1
            yield r

    with path.open("wb") as fh:
        fastavro.writer(fh, catalog.get(KIND).avro_schema, counted(), metadata={"renkei.kind": KIND},
                        codec="deflate")
    return dict(expected)


def run_one(records: int, *, seed: int = 1, batch: int | None = None, window: int | None = None,
            within: float = 1800.0, intake_only: bool = False, processes: int = 3,
            inline_writes: bool | None = None) -> dict[str, Any]:
    """One file of `records` changes through a fresh bus; the figures of that run."""
    with tempfile.TemporaryDirectory(prefix="renkei-bench-ingest-") as tmp:
        file = Path(tmp) / "extract.avro"
        child = subprocess.run([sys.executable, "-m", "bench.ingest", "--make", str(file), "--records", str(records),
                                "--seed", str(seed)], capture_output=True, text=True, check=True, cwd=ROOT)
        expected = Counter(json.loads(child.stdout.strip().splitlines()[-1]))
        result = asyncio.run(_run(file, records, expected, Path(tmp) / "state", batch, window, within, intake_only,
                                  1 if intake_only else processes, inline_writes))
        return {**result, "file_mb": round(file.stat().st_size / 2**20, 1)}


async def _run(file: Path, records: int, expected: Counter[str], state_dir: Path, batch: int | None,
               window: int | None, within: float, intake_only: bool, processes: int,
               inline_writes: bool | None = None) -> dict[str, Any]:
    from adapters.sources.bulk import open_bulk
    from adapters.sources.ingest import BATCH, WINDOW, Ingester, progress_dir
    from bench.embedded import _rss_mb
    from bus.app import Bus, BusParts
    from bus.brokers.embedded import EmbeddedBroker
    from bus.catalog import Catalog
    from bus.demo_procs import BusProcesses, ChildReport, split
    from bus.heap import settle_heap
    from bus.logs import configure_logging
    from bus.ports import FunctionSink, Outbound, Receipt
    from bus.settings import BusSettings, Settings
    from bus.settings_batching import BatchSettings

    catalog = Catalog.load()
    settings = Settings(bus=BusSettings(state_dir=state_dir, pseudonym_key=BENCH_KEY),
                        batching=BatchSettings(inline_writes=inline_writes))
    configure_logging(settings.logging.format, "WARNING", stream=sys.stderr)
    received: Counter[str] = Counter()

    def null(message: Outbound) -> Receipt:
        received[message.envelope.destination or ""] += 1
        return Receipt.applied(message)

    bus = Bus(settings, sinks={}, catalog=catalog)
    bus.sinks.update({name: FunctionSink(null) for name in bus.destinations})
    peak = [_rss_mb()]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], _rss_mb())
            await asyncio.sleep(0.2)

    sampler = asyncio.get_running_loop().create_task(sample())
    ingester = Ingester(bus.intake, source="bench", checkpoints=progress_dir(state_dir),
                        batch=batch or BATCH, window=window or WINDOW)
    group = BusProcesses(settings, split(bus.destinations, processes), null_sinks=True)
    reports: list[ChildReport] = []
    try:
        apart = bool(group.children)
        await bus.start(BusParts(router=not intake_only and not group.router_apart,
                                 deliverers=not intake_only and not apart))
        await group.start()
        settle_heap()  # this process is `renkei ingest`, set as it sets itself (bus.heap)
        load_start = os.getloadavg()
        started, cpu_started = time.perf_counter(), time.process_time()
        bulk = await asyncio.to_thread(open_bulk, file, "avro", catalog, KIND)
        done = await ingester.run(bulk)
        intake_seconds = time.perf_counter() - started
        idle = True if intake_only else await bus.wait_idle(within=within)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        load_end = os.getloadavg()
        failures = group.ended_early()
        mine = bus.broker.contention() if isinstance(bus.broker, EmbeddedBroker) else {}
    finally:
        sampler.cancel()
        reports = await group.stop()
        await bus.stop()
    peak[0] = max(peak[0], _rss_mb())
    own = cpu
    for report in reports:
        received.update(report.received)
        cpu += report.cpu_seconds_running or 0.0
    if intake_only:
        expected = Counter()  # nothing routed: the changes wait in the intake queue
    if done.accepted != records or received != expected or not idle or failures:
        raise RuntimeError(f"the bus did not do the work: counts {done.counts()}, idle {idle}, "
                           f"{sum(received.values())} of {sum(expected.values())} deliveries; {failures}")
    return {
        "records": records, "deliveries": sum(expected.values()), "destinations": dict(sorted(expected.items())),
        "batch": ingester.batch, "window": ingester.window,
        "seconds": round(seconds, 3), "intake_seconds": round(intake_seconds, 3),
        "records_per_s": round(records / seconds, 1), "intake_records_per_s": round(records / intake_seconds, 1),
        "cpu_seconds": round(cpu, 3), "cpu_ms_per_record": round(1000 * cpu / records, 3),
        "peak_rss_mb": round(peak[0], 1), "peak_held": ingester.peak_held,
        "paced_seconds": round(ingester.paced_seconds, 3),
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in load_end]},
        "delivered_all": not intake_only, "mode": "intake_only" if intake_only else "end_to_end",
        "processes": 1 + len(reports), "router_apart": group.router_apart,
        "cpu_seconds_this_process": round(own, 3),
        "cpu_seconds_other_processes": [r.cpu_seconds_running for r in reports],
        "peak_rss_mb_other_processes": [r.peak_rss_mb for r in reports],
        # what the RSS target is about with the bus in several processes: their peaks summed
        "peak_rss_mb_all_processes": round(peak[0] + sum(r.peak_rss_mb or 0.0 for r in reports), 1),
        # [bus] inline_writes, and how many of this process's broker transactions ran on its loop
        "inline_writes": BatchSettings(inline_writes=inline_writes).inline_for(embedded=True),  # in effect
        "inline_transactions": mine.get("inline_transactions", 0),
    }


def _line(r: dict[str, Any]) -> str:
    return (f"{r['records']:>8} records ({r['deliveries']} deliveries): {r['records_per_s']:8.1f} records/s "
            f"{r['mode'].replace('_', ' ')} ({r['intake_records_per_s']:.0f}/s intake)  "
            f"{r['cpu_ms_per_record']:.3f} ms CPU/record  peak RSS {r['peak_rss_mb']:.0f} MB  "
            f"held <= {r['peak_held']}  load {r['load_average']['start'][0]:.2f}")


def _machine() -> dict[str, Any]:
    from bench.embedded import _machine as machine

    return machine()


def run(sizes: list[int], seed: int, out: Path, batch: int | None, window: int | None,
        intake_only: bool = False, processes: int = 3, inline_writes: bool | None = None) -> dict[str, Any]:
    runs = []
    for n in sizes:
        if len(sizes) == 1:
            runs.append(run_one(n, seed=seed, batch=batch, window=window, intake_only=intake_only,
                                processes=processes, inline_writes=inline_writes))
        else:  # one fresh process per size, so each RSS is that size's own
            extra = [*(["--batch", str(batch)] if batch else []), *(["--window", str(window)] if window else []),
                     *(["--intake-only"] if intake_only else []), "--processes", str(processes),
                     *inline_writes_args(inline_writes)]
            child = subprocess.run([sys.executable, "-m", "bench.ingest", "--single", "--records", str(n),
                                    "--seed", str(seed), *extra], capture_output=True, text=True, check=True,
                                   cwd=ROOT)
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(_line(runs[-1]), flush=True)
    result = {
        "benchmark": "ingest-intake" if intake_only else "ingest",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": checkout_commit(),  # what it measured (+dirty: the checkout differed)
        "workload": f"an Avro file of valid {KIND} changes (synthetic registry, seed {seed}) ingested in batches "
                    + ("into the intake queue (no router or deliverers)" if intake_only else
                       "while the shipped routes route them to a null sink per addressed destination")
                    + ", embedded broker",
        "target": TARGET,
        "machine": _machine(),
        "runs": runs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=None, help="one or more file sizes")
    parser.add_argument("--full", action="store_true", help=f"{FULL_RECORDS:,} records")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=None, help="records per intake batch (default: the ingest's)")
    parser.add_argument("--window", type=int, default=None, help="batches in flight (default: the ingest's)")
    parser.add_argument("--intake-only", action="store_true",
                        help="the ingest alone: no router or deliverers (results in ingest-intake.json)")
    parser.add_argument("--processes", type=int, default=3,
                        help="the bus's processes (3, the default: this one takes the file in, the router and "
                             "the deliverers each in their own; 2: the deliverers apart; 1: the whole bus here)")
    inline_writes_option(parser)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)  # the child: write the file only
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # one size, JSON on stdout
    args = parser.parse_args(argv)
    sizes = args.records or ([FULL_RECORDS] if args.full else [DEFAULT_RECORDS])
    if any(n < 1 for n in sizes):
        parser.error("--records: each size must be at least 1")
    if args.processes < 1:
        parser.error("--processes: at least 1")
    if args.make is not None:
        print(json.dumps(make_file(args.make, sizes[0], args.seed)))
        return 0
    if args.single:
        print(json.dumps(run_one(sizes[0], seed=args.seed, batch=args.batch, window=args.window,
                                 intake_only=args.intake_only, processes=args.processes,
                                 inline_writes=args.inline_writes)))
        return 0
    out = args.out or (INTAKE_OUT if args.intake_only else DEFAULT_OUT)
    run(sizes, args.seed, out, args.batch, args.window, args.intake_only, args.processes, args.inline_writes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
