"""How soon a consumer in one process gets what another process published on the embedded broker:
with the doorbell (bus/brokers/doorbell.py) and without it (the data-version poll alone).

    python -m bench.wake [--messages 300] [--interval-ms 20] [--out bench/results/wake.json]

For each mode, in a fresh broker file: a consumer process, and this process publishing one message
every `interval` (50 keys in turn, each message stamped with the wall clock at publish); the
consumer records publish → handler for each. The figure is that latency's p50 / p90 / p99 / max,
and the ratio of the poll's p50 to the doorbell's (the reference run is the poll, in the same
sitting). One publish at a time, far below any throughput limit: this is the hop's latency alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import RESULTS, write
from bus.brokers.base import Delivery, OutgoingMessage
from bus.brokers.embedded import EmbeddedBroker

QUEUE = "bench.wake"


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, int(n * q))] * 1000, 2)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1] * 1000, 2)}


async def _consume(path: Path, doorbell: bool, expected: int, within: float) -> list[float]:
    broker = EmbeddedBroker(path, doorbell=doorbell)
    await broker.connect()
    latencies: list[float] = []
    done = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        latencies.append(time.time() - float(delivery.headers["published_at"]))
        if len(latencies) >= expected:
            done.set()

    try:
        await broker.declare(QUEUE)
        consumer = await broker.consume(QUEUE, handler)
        print("ready", flush=True)
        await asyncio.wait_for(done.wait(), within)
        await consumer.cancel()
    finally:
        await broker.close()
    return latencies


async def _publish(path: Path, doorbell: bool, messages: int, interval: float) -> None:
    broker = EmbeddedBroker(path, doorbell=doorbell)
    await broker.connect()
    try:
        await broker.declare(QUEUE)
        await asyncio.sleep(broker.heartbeat_interval * 1.5)  # a heartbeat: it has learned the consumer
        for i in range(messages):
            headers = {"published_at": repr(time.time())}
            await broker.publish(QUEUE, OutgoingMessage(b"x", f"m-{i}", f"k-{i % 50}", headers))
            await asyncio.sleep(interval)
    finally:
        await broker.close()


def run_one(doorbell: bool, messages: int, interval: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="renkei-bench-wake-") as tmp:
        path = Path(tmp) / "broker.sqlite"
        within = messages * interval + 60
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.wake", "--consumer", str(path), "--messages", str(messages),
             "--within", str(within), *([] if doorbell else ["--no-doorbell"])],
            stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            child.kill()
            raise SystemExit("the consumer process did not start")
        asyncio.run(_publish(path, doorbell, messages, interval))
        out, _ = child.communicate(timeout=within)
        if child.returncode != 0:
            raise SystemExit(f"the consumer process failed (exit {child.returncode})")
        latencies = json.loads(out)
    return {"doorbell": doorbell, "messages": len(latencies), "latency_ms": _percentiles(latencies)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wake", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "wake.json")
    parser.add_argument("--consumer", type=Path, help=argparse.SUPPRESS)  # the child's side
    parser.add_argument("--within", type=float, default=600.0, help=argparse.SUPPRESS)
    parser.add_argument("--no-doorbell", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.consumer is not None:
        latencies = asyncio.run(_consume(args.consumer, not args.no_doorbell, args.messages, args.within))
        print(json.dumps(latencies))
        return
    runs = [run_one(doorbell, args.messages, args.interval_ms / 1000) for doorbell in (False, True)]
    for r in runs:
        lat = r["latency_ms"]
        print(f"wake  {'doorbell' if r['doorbell'] else 'poll only':9}  {r['messages']} messages  "
              f"p50 {lat['p50']:6.2f} ms  p90 {lat['p90']:6.2f} ms  p99 {lat['p99']:6.2f} ms  max {lat['max']:6.2f} ms")
    poll, bell = runs
    ratio = round(poll["latency_ms"]["p50"] / max(bell["latency_ms"]["p50"], 0.001), 1)
    print(f"wake  the poll's p50 / the doorbell's: x{ratio}")
    write(args.out, {"benchmark": "wake", "workload": {"messages": args.messages, "interval_ms": args.interval_ms},
                     "runs": runs, "poll_over_doorbell_p50": ratio})


if __name__ == "__main__":
    main()
