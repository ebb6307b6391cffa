"""Per-stage throughput of one process, for the capacity model (docs/scaling.md, issue 15 item 5).

    python -m bench.stages                           # 1,000 changes, embedded + RabbitMQ, null + HTTP sinks
    python -m bench.stages --changes 4000 --brokers embedded --sinks null

For each broker and sink kind, a fresh `bus.app.Bus` (as `renkei run` assembles it) runs its
stages one after another, so each is timed alone on a full queue:

1. **intake**: the intake stage only (8 feeders awaiting `Bus.intake.submit`, as the HTTP intake
   and the inbox call it; the HTTP layer itself is not in it): parse, validate, pseudonymise,
   dedupe, publish (confirmed), audit. Until every change is accepted.
2. **router**: the router only, draining the intake queue into the destination queues: until
   they hold every delivery the route table gives (worked out from the routes, apart from the bus).
3. **deliver**: every destination's deliverer, draining those queues into the sinks: `null`
   (a `FunctionSink` that only counts: the bus's own cost) or `http` (an `HttpSink` per
   destination to the simulators, which run in a child process so that their CPU is not
   counted). Until every delivery is settled (applied, duplicate or dead-lettered).

Per stage: items (changes, or deliveries for deliver), seconds, this process's CPU seconds (every
thread), the RabbitMQ node's CPU seconds over the same interval (`bench.rabbit`), items per
second, CPU ms per item, and `per_core_per_s` (1000 / CPU ms: what one process does when the
stage has a core to itself, the figure the capacity model scales; on this shared 2-core machine
wall-clock rates swing with the neighbours). On RabbitMQ each broker run has a vhost of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from bench import rabbit, report
from bench.embedded import expected_deliveries
from bus.app import Bus, BusParts
from bus.catalog import Catalog
from bus.logs import configure_logging
from bus.masking import Pseudonymizer
from bus.ports import FunctionSink, Outbound, Receipt, Sink
from bus.settings import BusSettings, Settings
from bus.synthetic.samples import sample_records
from bus.topology import INTAKE_QUEUE, destination_queue

__all__ = ["main", "run", "run_one"]

KIND = "jumin.idou"
FEEDERS = 8
BENCH_KEY = b"renkei-bench-pseudonym-key-not-a-secret"
DEFAULT_OUT = report.RESULTS / "stages.json"
NOT_SETTLED = frozenset({"attempts", "retried", "held", "refused", "routed"})  # the rest are outcomes


class _Simulators:
    """The simulators in a child process (`python -m bench.stages --simulators`): their URLs."""

    def __enter__(self) -> dict[str, str]:
        self.child = subprocess.Popen([sys.executable, "-m", "bench.stages", "--simulators"], cwd=report.ROOT,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.child.stdout is not None
        line = self.child.stdout.readline()
        if not line:
            raise RuntimeError("the simulators did not start")
        urls: dict[str, str] = json.loads(line)
        return urls

    def __exit__(self, *exc: object) -> None:
        assert self.child.stdin is not None
        self.child.stdin.close()  # the child stops when its standard input closes
        self.child.wait(30)


async def _serve_simulators() -> None:
    from adapters.simulators import SimulatorCluster

    async with SimulatorCluster() as sims:
        print(json.dumps({name: sims.messages_url(name) for name in sims.states}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def _timed(what: str, work: Callable[[], Awaitable[None]], items: int, *, rabbitmq: bool) -> dict[str, Any]:
    node_cpu = rabbit.node_cpu_seconds if rabbitmq else lambda: None
    load_start, broker_cpu = report.load(), node_cpu()
    started, cpu = time.perf_counter(), time.process_time()
    await work()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    broker_after = node_cpu()
    node = round(broker_after - broker_cpu, 3) if broker_cpu is not None and broker_after is not None else None
    return {"stage": what, "items": items, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
            "per_s": round(items / seconds, 1), "cpu_ms_per_item": round(1000 * cpu / items, 3),
            "per_core_per_s": round(items / cpu, 1) if cpu else None, "rabbitmq_cpu_seconds": node,
            "load_average": {"start": load_start, "end": report.load()}}


async def _poll(done: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not finish within {within:.0f} s")
        await asyncio.sleep(0.05)


async def run_one(changes: int, *, broker_url: str | None, sink_kind: str, seed: int = 1,
                  within: float = 900.0) -> dict[str, Any]:
    """The three stages of one fresh bus, timed one after another."""
    with tempfile.TemporaryDirectory(prefix="renkei-bench-stages-") as tmp:
        catalog = Catalog.load()
        settings = Settings(bus=BusSettings(state_dir=Path(tmp), pseudonym_key=BENCH_KEY, broker_url=broker_url))
        ks, ids = catalog.get(KIND), Pseudonymizer(BENCH_KEY)
        records = list(sample_records(KIND, catalog, seed=seed, n=changes))
        bus = Bus(settings, sinks={}, catalog=catalog)
        expected = expected_deliveries(bus, records, ids)
        deliveries = sum(expected.values())
        partitions: list[list[bytes]] = [[] for _ in range(FEEDERS)]
        for r in records:  # one resident's changes stay in one feeder, in registry order
            partitions[zlib.crc32(r["address_number"].encode()) % FEEDERS].append(ks.to_xml(r))
        del records
        simulators: AbstractContextManager[dict[str, str]] = _Simulators() if sink_kind == "http" else nullcontext({})
        with simulators as urls:
            sizes: list[int] = []  # the projections' XML, bytes (null sinks)
            bus.sinks.update(_sinks(sink_kind, bus.destinations, urls, sizes))
            answers: Counter[str] = Counter()

            async def feed() -> None:
                async def feeder(bodies: list[bytes]) -> None:
                    for body in bodies:
                        answer = await bus.intake.submit(body, content_type="application/xml", source="jumin")
                        answers[answer.status] += 1
                await asyncio.gather(*(feeder(p) for p in partitions))

            async def routed() -> bool:
                depth = 0
                for name in expected:
                    depth += (await bus.broker.stats(destination_queue(name))).ready
                return depth >= deliveries and await bus.broker.drained([INTAKE_QUEUE])

            async def settled() -> bool:
                counts = bus.state.counters("destination")
                return sum(v for c in counts.values() for k, v in c.items() if k not in NOT_SETTLED) >= deliveries

            async def route() -> None:
                await bus.start(BusParts(router=True, deliverers=False))
                await _poll(routed, within, "the router")

            async def deliver() -> None:
                await bus.start(BusParts(router=False, deliverers=True))
                await _poll(settled, within, "the deliverers")

            try:
                await bus.start(BusParts(router=False, deliverers=False))
                on = broker_url is not None
                stages = [await _timed("intake", feed, changes, rabbitmq=on)]
                if answers["accepted"] != changes:
                    raise RuntimeError(f"not every change was accepted: {dict(answers)}")
                stages.append(await _timed("router", route, changes, rabbitmq=on))
                stages.append(await _timed(f"deliver ({sink_kind})", deliver, deliveries, rabbitmq=on))
                rss = report.rss_mb()  # this process, every stage running, before it stops
            finally:
                await bus.stop()
    return {"broker": "rabbitmq" if broker_url else "embedded", "sink": sink_kind, "changes": changes,
            "rss_mb": round(rss, 1), "xml_bytes_per_delivery": round(sum(sizes) / len(sizes)) if sizes else None,
            "deliveries": deliveries, "deliveries_per_change": round(deliveries / changes, 3),
            "destinations": dict(sorted(expected.items())), "stages": stages}


def _sinks(kind: str, destinations: list[str], urls: dict[str, str], sizes: list[int]) -> dict[str, Sink]:
    if kind == "null":
        def null(message: Outbound) -> Receipt:
            sizes.append(len(message.xml))
            return Receipt.applied(message)
        return {name: FunctionSink(null) for name in destinations}
    from adapters.transports.http import HttpSink

    missing = sorted(set(destinations) - set(urls))
    if missing:
        raise RuntimeError(f"no simulator for {', '.join(missing)}")
    return {name: HttpSink(urls[name], name=name) for name in destinations}


def run(changes: int, brokers: list[str], sinks: list[str], out: Path, seed: int = 1) -> dict[str, Any]:
    runs = []
    for broker in brokers:
        for sink in sinks:
            place: AbstractContextManager[str | None] = (
                rabbit.vhost("renkei-bench-stages", start=True) if broker == "rabbitmq" else nullcontext(None))
            with place as url:
                runs.append(asyncio.run(run_one(changes, broker_url=url, sink_kind=sink, seed=seed)))
            for s in runs[-1]["stages"]:
                node = f"  RabbitMQ {s['rabbitmq_cpu_seconds']:.2f} s CPU" if broker == "rabbitmq" else ""
                print(f"{broker:<9} {s['stage']:<15} {s['items']:>6} items: {s['per_s']:8.1f}/s  "
                      f"{s['cpu_ms_per_item']:6.3f} ms CPU/item ({s['per_core_per_s']:7.1f}/s per core){node}",
                      flush=True)
    return report.write(out, {
        "benchmark": "stages", "workload": f"{changes} valid {KIND} changes (synthetic registry, seed {seed}), "
                                          "the shipped routes",
        "measured": "each stage alone on a full queue, in one process; CPU of this process (every thread)",
        "target": None, "runs": runs,
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--brokers", nargs="+", choices=["embedded", "rabbitmq"], default=["embedded", "rabbitmq"])
    parser.add_argument("--sinks", nargs="+", choices=["null", "http"], default=["null", "http"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--simulators", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.simulators:
        asyncio.run(_serve_simulators())
        return 0
    if args.changes < 1:
        parser.error("--changes must be at least 1")
    configure_logging("json", "warning", stream=sys.stderr)
    run(args.changes, args.brokers, args.sinks, args.out, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
