"""The embedded path, end to end: N changes through the real bus on the embedded broker to null
sinks (issue 10's "embedded broker, routes + deliverers to null sinks" row).

    python -m bench.embedded                      # 2,000 changes
    python -m bench.embedded --changes 1000 10000 # the growth rows: one fresh process per size
    python -m bench.embedded --changes 1000 10000 100000 --repeat 3  # sizes under 50,000: the median of 3

What runs is `bus.app.Bus` as `renkei run` assembles it (intake stage, router, one deliverer
per destination the routes address, the audit recorder, counters, logs) on an
`EmbeddedBroker` in a fresh state directory. Each sink is a `FunctionSink` that only counts
(a null sink), so what is measured is the bus's own work. Changes are valid `jumin.idou`
records of the synthetic registry (`bus.synthetic`, seed `--seed`), made into XML before the
clock starts, and submitted by 8 feeders (one per partition of residents, as `renkei demo`
feeds), each awaiting one `Bus.intake.submit` at a time.

Processes (`--processes`, 3 by default, embedded broker only): the bus in several processes over
the same broker file, as `renkei demo` runs it (bus.demo_procs.split): 3, the intake and the
feeders in this process, the router in one, the deliverers and their null sinks in one; 2, the
router here too; 1, the whole bus in this process. CPU is then this process's plus each other
process's from its start to its stop, and what the null sinks received is what they reported.
How each process met the broker file's writer lock (its transactions, the seconds it held the
lock, its waits over 1 ms for another process holding it) is in `contention`.

The clock runs from the first submit until `Bus.wait_idle` sees every queue empty, as
`renkei demo` waits (so the idle wait's own queue-depth queries are in the figure). CPU is this process's
CPU time (`time.process_time`: every thread, SQLite's included) over the same interval: on a
shared machine it is the figure to compare, wall-clock rates swing with the neighbours.
Afterwards every sink must have received exactly what the routes say (worked out from the
route table, independently of the bus), or the run fails. Only counts are printed or
written: no record leaves this module.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import commit as checkout_commit
from bench.report import inline_writes_args, inline_writes_option
from bus.app import Bus, BusParts
from bus.brokers.embedded import EmbeddedBroker
from bus.catalog import Catalog
from bus.demo_procs import BusProcesses, ChildReport, split
from bus.heap import settle_heap
from bus.logs import configure_logging
from bus.masking import Pseudonymizer
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import AuditSettings, BusSettings, Settings
from bus.settings_batching import BatchSettings
from bus.synthetic.samples import sample_records

__all__ = ["Options", "main", "run", "run_one"]

DEFAULT_CHANGES = 2000
REPEAT_BELOW = 50_000  # --repeat applies to the sizes under this: the larger ones run minutes and swing less
FEEDERS = 8
KIND = "jumin.idou"
BENCH_KEY = b"renkei-bench-pseudonym-key-not-a-secret"
DEFAULT_OUT = Path("bench/results/embedded.json")


@dataclass(frozen=True)
class Options:
    changes: tuple[int, ...] = (DEFAULT_CHANGES,)
    seed: int = 1
    out: Path = DEFAULT_OUT
    within: float = 600.0  # seconds one size may take before the run fails
    backlog: bool = False  # submit every change first, then start the router and deliverers
    sync: str = "full"  # [bus] embedded_sync
    batch_size: int = 64  # [bus] batch_size
    linger_ms: int = 0  # [bus] batch_linger_ms
    broker_url: str | None = None  # RabbitMQ (a vhost of its own) instead of the embedded broker
    processes: int = 3  # the bus's processes (embedded; bus.demo_procs.split)
    templates: bool = True  # [bus] route_fast_path (False: the route stage's plain path)
    routed_records: str = "per_change"  # [audit] routed_records (per_destination: a record each)
    inline_writes: bool | None = None  # [bus] inline_writes (True: SQLite writes on the loop when the file is free)
    repeat: int = 1  # runs of each size under REPEAT_BELOW changes; the median one is kept


def _rss_mb() -> float:
    """This process's resident set now (Linux /proc), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024



def expected_deliveries(bus: Bus, records: list[dict[str, Any]], ids: Pseudonymizer) -> Counter[str]:
    """How many deliveries each destination should get for `records`, as the bus's routes say."""
    expected: Counter[str] = Counter()
    for r in records:
        message_id = ids.message_id(r["municipality_code"], r["address_number"], int(r["history_number"]))
        for match in bus.routes.route(r, r["municipality_code"], message_id=message_id):
            expected[match.route.destination] += 1
    return expected

async def run_one(changes: int, *, seed: int = 1, state_dir: Path | None = None,
                  within: float = 600.0, backlog: bool = False, sync: str = "full", batch_size: int = 64,
                  linger_ms: int = 0, broker_url: str | None = None, processes: int = 3,
                  templates: bool = True, routed_records: str = "per_change",
                  inline_writes: bool | None = None) -> dict[str, Any]:
    """Run `changes` changes through a fresh bus; the figures of that one run."""
    with tempfile.TemporaryDirectory(prefix="renkei-bench-embedded-", dir=state_dir) as tmp:
        batching = BatchSettings(batch_size, linger_ms, "normal" if sync == "normal" else "full", inline_writes)
        bus = BusSettings(state_dir=Path(tmp), pseudonym_key=BENCH_KEY, broker_url=broker_url,
                          route_fast_path=templates)
        settings = Settings(bus=bus, batching=batching, audit=AuditSettings(routed_records=routed_records))
        return {**await _run(changes, seed, settings, within, backlog, processes if broker_url is None else 1),
                "broker": "rabbitmq" if broker_url else "embedded", "routed_records": routed_records,
                "inline_writes": batching.inline_for(embedded=broker_url is None)}  # in effect


async def _run(changes: int, seed: int, settings: Settings, within: float, backlog: bool,
               processes: int) -> dict[str, Any]:
    catalog = Catalog.load()
    configure_logging(settings.logging.format, settings.logging.level, stream=sys.stderr)  # as `renkei run`
    ks = catalog.get(KIND)
    ids = Pseudonymizer(BENCH_KEY)
    records = list(sample_records(KIND, catalog, seed=seed, n=changes))
    received: Counter[str] = Counter()

    def null(message: Outbound) -> Receipt:
        received[message.envelope.destination or ""] += 1
        return Receipt.applied(message)

    bus = Bus(settings, sinks={}, catalog=catalog)
    expected = expected_deliveries(bus, records, ids)
    expected_total = sum(expected.values())
    bus.sinks.update({name: FunctionSink(null) for name in bus.destinations})
    partitions: list[list[bytes]] = [[] for _ in range(FEEDERS)]
    for r in records:  # one resident's changes stay in one feeder, in registry order
        partitions[zlib.crc32(r["address_number"].encode()) % FEEDERS].append(ks.to_xml(r))
    del records
    answers: Counter[str] = Counter()

    async def feeder(bodies: list[bytes]) -> None:
        for body in bodies:
            answers[(await bus.intake.submit(body, content_type="application/xml", source="jumin")).status] += 1

    rss_before = _rss_mb()
    group = BusProcesses(settings, split(bus.destinations, processes), null_sinks=True)
    reports: list[ChildReport] = []
    try:
        apart = bool(group.children)
        await bus.start(BusParts(router=not backlog and not group.router_apart, deliverers=not backlog and not apart))
        if backlog:  # a queue full of changes, as after a restart or a bulk file: the drain is timed
            await asyncio.gather(*(feeder(p) for p in partitions))
            await bus.start(BusParts(sources=False, router=not group.router_apart, deliverers=not apart))
        await group.start()
        settle_heap()  # this process is the intake, set as `renkei run` sets it (bus.heap)
        load_start = os.getloadavg()
        started, cpu_started = time.perf_counter(), time.process_time()
        if not backlog:
            await asyncio.gather(*(feeder(p) for p in partitions))
        idle = await bus.wait_idle(within=within)  # as `renkei demo` waits for the bus to drain
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        load_end = os.getloadavg()
        rss = _rss_mb()
        failures = group.ended_early()
        mine = bus.broker.contention() if isinstance(bus.broker, EmbeddedBroker) else {}
    finally:
        reports = await group.stop()
        await bus.stop()
    children_cpu = sum(r.cpu_seconds_running or 0.0 for r in reports)
    for report in reports:
        received.update(report.received)
    contention = [mine, *(r.contention for r in reports)]
    if answers["accepted"] != changes or received != expected or not idle or failures:
        raise RuntimeError(f"the bus did not do the work: answers {dict(answers)}, idle {idle}, "
                           f"{sum(received.values())} of {expected_total} deliveries; {failures}")
    own = cpu
    cpu += children_cpu
    return {
        "changes": changes, "deliveries": expected_total, "destinations": dict(sorted(expected.items())),
        "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
        "changes_per_s": round(changes / seconds, 1), "cpu_ms_per_change": round(1000 * cpu / changes, 3),
        "cpu_ms_per_delivery": round(1000 * cpu / expected_total, 3),
        "rss_mb": round(rss, 1), "rss_mb_before": round(rss_before, 1),
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in load_end]},
        "delivered_all": True, "mode": "backlog" if backlog else "fed", "sync": settings.batching.embedded_sync,
        "batch_size": settings.batching.batch_size, "batch_linger_ms": settings.batching.linger_ms,
        "processes": 1 + len(reports), "router_apart": group.router_apart,
        "cpu_seconds_this_process": round(own, 3) if reports else None,
        "cpu_seconds_other_processes": [r.cpu_seconds_running for r in reports],
        "cpu_seconds_other_processes_whole": [r.cpu_seconds for r in reports],  # start-up and stop included
        "contention": contention,
        "route_fast_path": settings.bus.route_fast_path,
    }


def _machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def run(options: Options) -> dict[str, Any]:
    """Every size of `options.changes`, each in a fresh process (so RSS is that size's own), and
    the result file. A size under REPEAT_BELOW changes runs `options.repeat` times: a run of
    1,000 changes lasts about a second, and one run swings by ±15 % on this kind of machine
    (bench/README.md, "The growth row and its repeats"); the run with the median CPU per change
    is kept, with every run's figures under `repeats`."""
    runs = []
    for n in options.changes:
        times = options.repeat if n < REPEAT_BELOW else 1
        if len(options.changes) == 1 and times == 1:
            runs.append(asyncio.run(run_one(n, seed=options.seed, within=options.within, backlog=options.backlog,
                                            sync=options.sync, batch_size=options.batch_size,
                                            linger_ms=options.linger_ms, broker_url=options.broker_url,
                                            processes=options.processes, templates=options.templates,
                                            routed_records=options.routed_records,
                                            inline_writes=options.inline_writes)))
        else:
            runs.append(_median([_child(options, n) for _ in range(times)]))
        print(_line(runs[-1]), flush=True)
    result = {
        "benchmark": "embedded", "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": checkout_commit(),  # what it measured (+dirty: the checkout differed)
        "workload": f"valid {KIND} changes (synthetic registry, seed {options.seed}), {FEEDERS} feeders, "
                    "the shipped routes, a null sink per addressed destination",
        "target": {"changes_per_s": 3000, "cpu_growth": "flat (+-20 %) from 1,000 to 100,000"},
        "machine": _machine(), "runs": runs,
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def _child(options: Options, n: int) -> dict[str, Any]:
    """One size in a fresh process: this interpreter, this module, numbers only."""
    child = subprocess.run(
        [sys.executable, "-m", "bench.embedded", "--single", "--changes", str(n), "--seed", str(options.seed),
         *(["--backlog"] if options.backlog else []), "--sync", options.sync,
         "--batch-size", str(options.batch_size), "--linger-ms", str(options.linger_ms),
         "--processes", str(options.processes),
         *(["--broker-url", options.broker_url] if options.broker_url else []),
         *([] if options.templates else ["--plain-route"]), "--routed-records", options.routed_records,
         *inline_writes_args(options.inline_writes)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
    )
    return dict(json.loads(child.stdout.strip().splitlines()[-1]))


def _median(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median CPU per change (of an even number, the higher middle one), and
    every run's rate and CPU under `repeats`."""
    if len(repeats) == 1:
        return repeats[0]
    ranked = sorted(repeats, key=lambda r: r["cpu_ms_per_change"])
    return {**ranked[len(ranked) // 2],
            "repeats": [{"changes_per_s": r["changes_per_s"], "cpu_ms_per_change": r["cpu_ms_per_change"],
                         "load_1min": r["load_average"]["start"][0]} for r in repeats]}


def _line(r: dict[str, Any]) -> str:
    return (f"{r['changes']:>7} changes ({r['deliveries']} deliveries): {r['changes_per_s']:8.1f} changes/s  "
            f"{r['cpu_ms_per_change']:7.3f} ms CPU/change  RSS {r['rss_mb']:.0f} MB  "
            f"load {r['load_average']['start'][0]:.2f}  processes {r.get('processes', 1)}"
            + (f"  (median of {len(r['repeats'])}: " + ", ".join(f"{x['cpu_ms_per_change']:.3f}" for x in r["repeats"])
               + " ms)" if r.get("repeats") else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.embedded", description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, nargs="+", default=[DEFAULT_CHANGES], help="one or more sizes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--within", type=float, default=600.0)
    parser.add_argument("--backlog", action="store_true",
                        help="submit every change before the router and deliverers start; time the drain")
    parser.add_argument("--sync", choices=("full", "normal"), default="full",
                        help="[bus] embedded_sync: fsync each publish (full, the default) or not (normal)")
    parser.add_argument("--batch-size", type=int, default=64, help="[bus] batch_size (default 64)")
    parser.add_argument("--linger-ms", type=int, default=0, help="[bus] batch_linger_ms (default 0)")
    parser.add_argument("--broker-url", help="RabbitMQ (amqp://..., a vhost of its own) instead of the embedded broker")
    parser.add_argument("--processes", type=int, default=3,
                        help="the bus's processes on the embedded broker (3, the default: intake, router, "
                             "deliverers; 2: the deliverers apart; 1: the whole bus in this one)")
    parser.add_argument("--plain-route", dest="templates", action="store_false",
                        help="[bus] route_fast_path = false: the route stage's plain path (every projection "
                             "copied and written on its own, every body parsed)")
    parser.add_argument("--routed-records", choices=("per_change", "per_destination"), default="per_change",
                        help="[audit] routed_records: one routed audit record per change (the default) or one "
                             "per destination (as before December 2026)")
    inline_writes_option(parser)
    parser.add_argument("--repeat", type=int, default=1,
                        help=f"run each size under {REPEAT_BELOW:,} changes this many times, each in a fresh "
                             "process, and keep the run with the median CPU per change (default 1)")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # one size, JSON on stdout
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.changes):
        parser.error("--changes: each size must be at least 1")
    if args.processes < 1:
        parser.error("--processes: at least 1")
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    if args.single:
        print(json.dumps(asyncio.run(run_one(args.changes[0], seed=args.seed, within=args.within,
                                             backlog=args.backlog, sync=args.sync, batch_size=args.batch_size,
                                             linger_ms=args.linger_ms, broker_url=args.broker_url,
                                             processes=args.processes, templates=args.templates,
                                             routed_records=args.routed_records,
                                             inline_writes=args.inline_writes))))
        return 0
    run(Options(tuple(args.changes), args.seed, args.out, args.within, args.backlog, sync=args.sync,
                batch_size=args.batch_size, linger_ms=args.linger_ms, broker_url=args.broker_url,
                processes=args.processes, templates=args.templates, routed_records=args.routed_records,
                inline_writes=args.inline_writes,
                repeat=args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
