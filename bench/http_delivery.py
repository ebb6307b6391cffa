"""One destination's deliverer over HTTP, one request per change against batches (issue 10 item 3).

    python -m bench.http_delivery                               # 2,000 changes, batch sizes 1 and 100
    python -m bench.http_delivery --changes 5000 --batch-size 1 --batch-size 20 --batch-size 100

For each batch size, a fresh embedded broker (bus.brokers.embedded) holds `--changes` zei.jumin
projections of distinct residents on the `zei` destination's queue before the clock starts;
then the deliver stage (bus.stages.deliver, through the Dispatcher, `concurrency` = the batch
size, at least 8, as `renkei demo` sets it) empties it through `HttpSink(batch_size=N)` into
the zei simulator (`renkei simulate zei`), which runs in a process of its own so that this
process's CPU is the bus side's alone. The clock stops when the simulator has applied every
change (its GET /received counts). Reported per size: deliveries/s, CPU ms per delivery of
this process and of the simulator, requests made; `--out` (bench/results/http_delivery.json)
keeps them with the machine's load. Only counts and timings leave this module.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from adapters.transports.http import HttpSink
from bus.brokers.base import OutgoingMessage
from bus.brokers.embedded import EmbeddedBroker
from bus.catalog import Catalog
from bus.delivery import DeliveryStore, RetryPolicy
from bus.envelope import Envelope
from bus.routing.router import RouteTable
from bus.stages import DeliverStage, Dispatcher, ResidentLine, StageHooks
from bus.synthetic import Registry
from bus.topology import destination_queue

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "http_delivery.json"
QUEUE = destination_queue("zei")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _projection(catalog: Catalog) -> bytes:
    """A valid zei.jumin projection (every change carries the same body; keys differ)."""
    routes = RouteTable.load(catalog=catalog)
    record = next(Registry(seed=3).events(1))
    match = next(m for m in routes.route(record, record["municipality_code"]) if m.route.destination == "zei")
    body: bytes = match.target.to_xml(match.record)
    return body


async def _applied(client: httpx.AsyncClient, url: str) -> dict[str, int]:
    counts: dict[str, int] = (await client.get(url + "/received", params={"limit": 0})).json()["counts"]
    return counts


def run_one(changes: int, batch_size: int, catalog: Catalog, body: bytes) -> dict[str, Any]:
    """One batch size against a fresh simulator process."""
    port = _free_port()
    simulator = subprocess.Popen([sys.executable, "-m", "bus.cli", "simulate", "zei", "--port", str(port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        return asyncio.run(_deliver(changes, batch_size, catalog, body, f"http://127.0.0.1:{port}", simulator.pid))
    finally:
        simulator.terminate()
        simulator.wait(30)


async def _deliver(changes: int, batch_size: int, catalog: Catalog, body: bytes, url: str, pid: int
                   ) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(300):
            try:
                if (await client.get(url + "/healthz")).status_code == 200:
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
        with tempfile.TemporaryDirectory(prefix="renkei-bench-http-") as tmp:
            broker = EmbeddedBroker(Path(tmp) / "broker.sqlite")
            await broker.connect()
            await broker.declare(QUEUE)
            for n in range(changes):
                env = Envelope(message_id=f"{n:032x}", kind="zei.jumin", schema_version=1,
                               content_type="application/xml", municipality="131016", source="jumin",
                               subject=f"{n + 1:032x}", sequence=1, destination="zei", route="zei-all-changes")
                await broker.publish(QUEUE, OutgoingMessage(body, env.message_id, env.subject,
                                                            dict(env.to_headers())))
            store, hooks = DeliveryStore(Path(tmp) / "delivery.sqlite"), StageHooks()
            line = ResidentLine(store, "zei", hooks)
            sink = HttpSink(url + "/messages", name="zei", batch_size=batch_size)
            stage = DeliverStage(broker, catalog, line, sink, policy=RetryPolicy(), hooks=hooks)
            started, cpu, sim_cpu = time.perf_counter(), time.process_time(), _cpu(pid)
            consumer = await broker.consume(QUEUE, Dispatcher(stage, hooks, line, poison_after=5),
                                            concurrency=max(8, batch_size))
            while (counts := await _applied(client, url))["effects"] < changes:  # noqa: ASYNC110 (another process)
                await asyncio.sleep(0.05)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            sim_cpu = _cpu(pid) - sim_cpu
            await consumer.cancel()
            await sink.aclose()
            await broker.close()
            store.close()
    return {"batch_size": batch_size, "changes": changes, "seconds": round(seconds, 3),
            "deliveries_per_s": round(changes / seconds, 1),
            "bus_cpu_ms_per_delivery": round(1000 * cpu / changes, 3),
            "simulator_cpu_ms_per_delivery": round(1000 * sim_cpu / changes, 3),
            "requests": counts["requests"], "batches": counts["batches"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_delivery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, action="append", dest="sizes", metavar="N",
                        help="repeatable (default: 1 and 100)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    catalog = Catalog.load()
    body = _projection(catalog)
    load_start = os.getloadavg()
    runs = []
    for size in args.sizes or [1, 100]:
        r = run_one(args.changes, size, catalog, body)
        runs.append(r)
        print(f"batch_size {size:>4}: {r['deliveries_per_s']:8.1f} deliveries/s  {r['bus_cpu_ms_per_delivery']:.3f} ms "
              f"CPU/delivery (bus)  {r['simulator_cpu_ms_per_delivery']:.3f} ms (simulator)  "
              f"{r['requests']} requests", flush=True)
    result = {"benchmark": "http_delivery", "runs": runs,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "load_average": {"start": load_start, "end": os.getloadavg()}}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
