"""Pipeline benchmark: renkei's router on RabbitMQ against a hand-written aio-pika pipeline.

    .venv/bin/python -m bench.pipeline --messages 5000 --out bench/results/pipeline.json

Both sides get the same workload (bench.workload: N valid jumin.idou changes, each routed to
exactly 5 destinations) pre-loaded into their own input queue, and are timed from the first
consumed message to the last one whose 5 outputs were confirmed. With `--rounds R` the sides
alternate (reference first in odd rounds, renkei first in even ones) and the medians count.
Prints messages/s of both and the ratio renkei / reference; writes everything to a JSON file.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import aio_pika

from bench import faststream_side
from bench.meter import SideResult
from bench.reference import run_reference
from bench.renkei_side import ROUTER_CONCURRENCY, run_renkei
from bench.report import commit as checkout_commit
from bench.report import inline_writes_option
from bench.workload import FANOUT, QueueSet, Workload, build_workload
from bus.heap import settle_heap
from bus.logs import configure_logging
from bus.settings_batching import BatchSettings

__all__ = ["Options", "amqp_url", "main", "run"]

TARGET = 0.7
FASTSTREAM_TARGET = 2.0  # issue 10: renkei's router at least twice a FastStream pipeline's msg/s
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "pipeline.json"
MEASURED = "from the first consumed message to the last message whose outputs were all confirmed"
REFERENCE_WHAT = ("aio-pika: consume, lxml parse + XSD validate, publish to 5 queues (persistent, mandatory, "
                  "confirms awaited together), ack")
RENKEI_WHAT = ("bus.stages.RouteStage (and its Dispatcher) on bus.brokers.amqp.AmqpBroker in batches "
               "(Broker.consume_batches, [bus] batch_size) with the shipped routes, state and (unless --no-audit) "
               "the audit recorder, as bus.app.Bus runs it")
COMPARABILITY = (f"every input message routes to exactly {FANOUT} distinct destinations under the shipped "
                 f"routes (picked from the synthetic registry); the reference publishes each input message "
                 f"to {FANOUT} queues")


@dataclass(frozen=True)
class Options:
    url: str
    messages: int = 2000
    rounds: int = 3
    seed: int = 1
    audit: bool = True  # renkei records its audit trail, as bus.app.Bus has it do
    fast_path: bool = True  # renkei's broker on bus/brokers/amqp/fastpath.py ([bus] amqp_fast_path)
    out: Path | None = DEFAULT_OUT
    within: float = 300.0  # seconds a side may take
    faststream: bool = False  # a third side: the same work in FastStream (the `bench` extra)
    batch_size: int = BatchSettings().batch_size  # renkei's `[bus] batch_size` (1: one message at a time)
    templates: bool = True  # renkei's `[bus] route_fast_path` (False: the route stage's plain path)
    inline_writes: bool | None = None  # renkei's `[bus] inline_writes` (None: the default, off on RabbitMQ)


def amqp_url(given: str | None) -> str:
    """--amqp-url, else RENKEI_BENCH_AMQP_URL / RENKEI_TEST_AMQP_URL, else start the test node."""
    for url in (given, os.environ.get("RENKEI_BENCH_AMQP_URL"), os.environ.get("RENKEI_TEST_AMQP_URL")):
        if url and url.strip():
            return url.strip()
    done = subprocess.run(["bash", str(ROOT / "scripts" / "rabbitmq.sh"), "start"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"no AMQP URL given and scripts/rabbitmq.sh could not start a node:\n{done.stderr}")
    return done.stdout.strip()


async def run(options: Options, *, echo: bool = True) -> dict[str, Any]:
    """Run the benchmark; return the result (also written to `options.out` unless None)."""
    say = print if echo else (lambda *_a, **_k: None)
    load_at_start = _load()
    workload = build_workload(options.messages, seed=options.seed)
    say(f"workload: {len(workload)} jumin.idou changes x {FANOUT} destinations "
        f"(from {workload.candidates} synthetic changes), {options.rounds} round(s)")
    rounds: list[dict[str, SideResult]] = []
    sides = ("reference", "renkei", "faststream") if options.faststream else ("reference", "renkei")
    for number in range(1, options.rounds + 1):
        order = sides if number % 2 else sides[::-1]  # drift cancels
        results = {side: await _side(side, options, workload) for side in order}
        rounds.append(results)
        ref, ren = results["reference"], results["renkei"]
        line = (f"round {number}: reference {ref.messages_per_s:7.1f} msg/s ({_cpu_ms(ref):.2f} ms CPU/msg)   "
                f"renkei {ren.messages_per_s:7.1f} msg/s ({_cpu_ms(ren):.2f} ms CPU/msg)   "
                f"ratio {ren.messages_per_s / ref.messages_per_s:.3f}")
        if "faststream" in results:
            fs = results["faststream"]
            line += (f"   faststream {fs.messages_per_s:7.1f} msg/s ({_cpu_ms(fs):.2f} ms CPU/msg)   "
                     f"renkei/faststream {ren.messages_per_s / fs.messages_per_s:.3f}")
        say(line)
    result = await _summary(options, workload, rounds, load_at_start)
    say(f"reference (aio-pika): {result['reference']['messages_per_s']:8.1f} msg/s")
    say(f"renkei (route):        {result['renkei']['messages_per_s']:8.1f} msg/s")
    say(f"ratio renkei/reference: {result['ratio']:.3f} (target >= {TARGET}: {'PASS' if result['passed'] else 'FAIL'})"
        f"   CPU ratio {result['cpu_ratio']:.3f}")
    if options.faststream:
        fs = result["versus_faststream"]
        say(f"ratio renkei/faststream: {fs['ratio']:.3f} (target >= {FASTSTREAM_TARGET}: "
            f"{'PASS' if fs['passed'] else 'FAIL'})   CPU ratio {fs['cpu_ratio']:.3f}")
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        say(f"wrote {options.out}")
    return result


async def _side(side: str, options: Options, workload: Workload) -> SideResult:
    outputs = workload.destinations if side == "renkei" else tuple(f"q{i}" for i in range(1, FANOUT + 1))
    queues = QueueSet(side, outputs)
    connection = await aio_pika.connect(options.url, client_properties={"connection_name": "renkei-bench-admin"})
    try:
        channel = await connection.channel()
        await queues.declare(channel)
        try:
            if side == "renkei":
                result = await run_renkei(options.url, workload, queues, audit=options.audit, within=options.within,
                                          fast_path=options.fast_path, templates=options.templates,
                                          batching=BatchSettings(batch_size=options.batch_size,
                                                                 inline_writes=options.inline_writes))
            elif side == "faststream":
                result = await faststream_side.run_faststream(options.url, workload, queues,
                                                              prefetch=_prefetch(options), within=options.within)
            else:
                result = await run_reference(options.url, workload, queues, prefetch=_prefetch(options),
                                             within=options.within)
        finally:
            await queues.delete(channel)
    finally:
        await connection.close()
    _check(result, len(workload))
    return result


def _prefetch(options: Options) -> int:
    """Every side's prefetch: the renkei router's (BatchSettings.router_prefetch), so none waits
    on the broker for want of messages it could hold. The reference and FastStream ran at 64
    before stop 24; at 1,024 they were within their noise (bench/README.md)."""
    return BatchSettings(batch_size=options.batch_size).router_prefetch


def _cpu_ms(result: SideResult) -> float:
    return 1000 * result.cpu_seconds / result.messages


def _check(result: SideResult, n: int) -> None:
    if result.processed != n or result.outputs != n * FANOUT or result.input_left:
        raise RuntimeError(f"{result.side}: processed {result.processed} of {n}, {result.outputs} outputs "
                           f"(expected {n * FANOUT}), {result.input_left} left in the input queue")


async def _summary(options: Options, workload: Workload, rounds: list[dict[str, SideResult]],
                   load_at_start: list[float]) -> dict[str, Any]:
    def median(side: str, of: Callable[[SideResult], float]) -> float:
        return statistics.median(of(r[side]) for r in rounds)

    ratio = statistics.median(r["renkei"].messages_per_s / r["reference"].messages_per_s for r in rounds)
    cpu_ratio = statistics.median(r["reference"].cpu_seconds / r["renkei"].cpu_seconds for r in rounds)
    sides = {
        side: {"messages_per_s": round(median(side, lambda r: r.messages_per_s), 1),
               "cpu_ms_per_message": round(median(side, _cpu_ms), 3),
               "what": what}
        for side, what in (("reference", REFERENCE_WHAT), ("renkei", RENKEI_WHAT),
                           ("faststream", faststream_side.WHAT))
        if side in rounds[0]
    }
    versus: dict[str, Any] = {}
    if "faststream" in rounds[0]:
        fs_ratio = statistics.median(r["renkei"].messages_per_s / r["faststream"].messages_per_s for r in rounds)
        versus = {"versus_faststream": {
            "ratio": round(fs_ratio, 3),
            "cpu_ratio": round(statistics.median(r["faststream"].cpu_seconds / r["renkei"].cpu_seconds
                                                 for r in rounds), 3),
            "ratio_is": "median over rounds of renkei msg/s / faststream msg/s in the same round",
            "target": FASTSTREAM_TARGET, "passed": fs_ratio >= FASTSTREAM_TARGET,
            "faststream": faststream_side.version()}}
    return {
        "benchmark": "pipeline",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": checkout_commit(),  # what it measured (+dirty: the checkout differed)
        "messages": len(workload),
        "outputs_per_message": FANOUT,
        "comparability": COMPARABILITY,
        "destinations": list(workload.destinations),
        "measured": MEASURED,
        **sides,
        "ratio": round(ratio, 3),
        "ratio_is": "median over rounds of renkei msg/s / reference msg/s in the same round",
        "cpu_ratio": round(cpu_ratio, 3),
        "cpu_ratio_is": "median over rounds of reference CPU/msg / renkei CPU/msg (this process; steadier "
                        "than msg/s when other work shares the machine)",
        "target": TARGET,
        "passed": ratio >= TARGET,
        **versus,
        "rounds": [{side: result.to_dict() for side, result in sorted(r.items())} for r in rounds],
        "settings": {"seed": options.seed, "router_concurrency": ROUTER_CONCURRENCY,
                     "prefetch": _prefetch(options), "queue_type": "quorum", "rounds": options.rounds,
                     "renkei_audit": options.audit, "renkei_amqp_fast_path": options.fast_path,
                     "renkei_batch_size": options.batch_size, "renkei_route_fast_path": options.templates,
                     "renkei_inline_writes": BatchSettings(inline_writes=options.inline_writes).inline_for(
                         embedded=False),
                     "gc": {"thresholds": list(gc.get_threshold()), "frozen": gc.get_freeze_count() > 0}},
        "machine": {**await _machine(options.url), "load_average_start": load_at_start},
        "load_average": {"start": load_at_start, "end": _load()},
    }


async def _machine(url: str) -> dict[str, Any]:
    connection = await aio_pika.connect(url)
    try:
        transport = connection.transport
        rabbitmq = _text(transport.connection.server_properties.get("version")) if transport else "unknown"
    finally:
        await connection.close()
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_end": _load(),
        "rabbitmq": rabbitmq,
        "aio_pika": metadata.version("aio-pika"),
        "lxml": metadata.version("lxml"),
    }


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", "-n", type=int, default=Options.messages, help="input messages per side")
    parser.add_argument("--rounds", type=int, default=Options.rounds,
                        help="runs of each side, alternating which goes first; medians are reported")
    parser.add_argument("--seed", type=int, default=Options.seed, help="synthetic registry seed")
    parser.add_argument("--amqp-url", help="RabbitMQ URL (default: RENKEI_BENCH_AMQP_URL, RENKEI_TEST_AMQP_URL, "
                                           "else the private test node from scripts/rabbitmq.sh)")
    parser.add_argument("--no-audit", dest="audit", action="store_false",
                        help="renkei without its audit trail (default: with it, as `renkei run` has it)")
    parser.add_argument("--public-path", dest="fast_path", action="store_false",
                        help="renkei's broker on aio-pika's and aiormq's public API only (`[bus] amqp_fast_path = "
                             "false`); default: the fast path, as `renkei run` has it")
    parser.add_argument("--faststream", action="store_true",
                        help="a third side: the same work as a FastStream service (needs the `bench` extra)")
    parser.add_argument("--batch-size", type=int, default=Options.batch_size,
                        help="renkei's `[bus] batch_size` (default: the shipped one; 1: the router one message "
                             "at a time, as before the batching core)")
    inline_writes_option(parser, "renkei's SQLite audit")
    parser.add_argument("--plain-route", dest="templates", action="store_false",
                        help="renkei's `[bus] route_fast_path = false`: the route stage's plain path (every "
                             "projection copied and written on its own)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result JSON file")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rounds < 1 or args.batch_size < 1:
        parser.error("--messages, --rounds and --batch-size must be at least 1")
    if args.faststream and not faststream_side.available():
        parser.error("--faststream: FastStream is not installed (pip install -e '.[bench]')")
    configure_logging(level="info")  # as `renkei run` logs: debug events are not rendered
    settle_heap()  # the GC settings `renkei run` has, for both sides alike (run() leaves them as they are)
    options = Options(amqp_url(args.amqp_url), messages=args.messages, rounds=args.rounds, seed=args.seed,
                      audit=args.audit, fast_path=args.fast_path, out=args.out, faststream=args.faststream,
                      batch_size=args.batch_size, templates=args.templates, inline_writes=args.inline_writes)
    result = asyncio.run(run(options))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
