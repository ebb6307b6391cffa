"""`renkei run` under a steady offered load: p99 accepted → delivered (issue 10, row 4).

    python -m bench.run_latency                                 # 200/s for 15 s, then 1,000/s for 5 s
    python -m bench.run_latency --load 200x15 --load 1000x15    # rate x seconds, each a fresh bus
    python -m bench.run_latency --broker-url amqp://...         # on RabbitMQ (a vhost of its own)
    python -m bench.run_latency --roles-apart                   # intake+router and deliverers: two processes

Each load starts `renkei run --config <generated> --with-simulators` as its own process, in a
fresh state directory: the embedded broker (or `--broker-url`), the HTTP intake, the router and
a deliverer per destination of examples/renkei.toml, each to its simulator over HTTP, on free
ports. The simulators are the bus's child process (as `--with-simulators` serves them since
stop 26); their CPU is reported apart from the bus's (`simulators_cpu_seconds`). With
`--roles-apart` the bus is the production shape of two processes on one state
directory: `renkei run --role router` (the intake and the router) and `renkei run --role
deliver` (every deliverer), so the bus's Python work has both cores. This process is the load
generator: valid `jumin.idou` changes of the synthetic registry (XML, made before the clock)
POSTed to /v1/messages open-loop, request i at t0 + i/rate whether or not earlier ones were
answered (at most 64 connections), until `seconds` have passed. Then it waits until every
delivery the route table gives (worked out here, apart from the bus) is delivered or
dead-lettered.

The latencies come from the bus's own audit trail, read after the bus has stopped: per
delivery, the `delivered` event's time minus the message's `accepted` time (both stamped by the
bus on one clock). Reported: p50/p95/p99/max per delivery, p99 per change (accepted → its last
delivery), the offered and achieved rates, and the bus processes' CPU time and RSS (summed). Only counts,
rates and durations leave this module: no record, no identifier.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from bench import report
from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.paths import routes_dir
from bus.routing.router import RouteTable
from bus.synthetic.samples import sample_records
from bus.topology import StateDir

__all__ = ["DEFAULT_LOADS", "TARGETS", "Load", "main", "run_one"]

KEPT_UP = 0.95  # the share of the offered rate the intake must answer at for a target to count as met
TARGETS = {200: 50.0, 1000: 250.0}  # offered changes/s -> p99 accepted -> delivered, ms (issue 10)
DEFAULT_LOADS = ("200x15", "1000x5")
DEFAULT_OUT = report.RESULTS / "run_latency.json"
KIND = "jumin.idou"
BENCH_KEY = "renkei-bench-pseudonym-key-not-a-secret"
CONNECTIONS = 64
EXAMPLE = report.ROOT / "examples" / "renkei.toml"


@dataclass(frozen=True)
class Load:
    rate: int  # changes offered per second
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Load:
        try:
            rate, seconds = text.lower().split("x")
            load = cls(int(rate), float(seconds))
        except ValueError:
            raise argparse.ArgumentTypeError(f"a load is RATExSECONDS such as 200x15, got {text!r}") from None
        if load.rate < 1 or load.seconds <= 0:
            raise argparse.ArgumentTypeError(f"a load needs a rate of at least 1 and seconds above 0, got {text!r}")
        return load

    @property
    def changes(self) -> int:
        return max(1, round(self.rate * self.seconds))


def _free_ports(n: int) -> list[int]:
    """`n` distinct free ports (every socket held until all are chosen: no port twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_config(directory: Path, batch: int | None = None, linger_ms: int = 0, bus_linger_ms: int | None = None,
                 http_client: str | None = None) -> tuple[Path, int]:
    """A renkei.toml of examples/renkei.toml's destinations on free ports, state in `directory`,
    each with the example's delivery keys (`batch_size`, `concurrency`: batches of 100);
    `batch`: every destination takes batches of up to that many changes instead (1: one request
    per change, with the default 8 in flight), waiting up to `linger_ms` for one to fill.
    `bus_linger_ms`: `[bus] batch_linger_ms` (None: the default). No deliverer's health listener
    (`[bus] health_port = 0`): two runs never clash on it. `http_client`: every destination's
    (`aiohttp`, `httpx`; None: the default)."""
    example = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    intake, *ports = _free_ports(1 + len(example["destinations"]))
    lines = ["[bus]", f'state_dir = "{directory / "state"}"', "health_port = 0",
             *(() if bus_linger_ms is None else (f"batch_linger_ms = {bus_linger_ms}",)),
             "", "[intake]", 'http_host = "127.0.0.1"',
             f"http_port = {intake}", "", "[logging]", 'format = "json"', 'level = "warning"', ""]
    for (name, table), port in zip(example["destinations"].items(), ports, strict=True):
        lines += [f"[destinations.{name}]", 'transport = "http"', f'url = "http://127.0.0.1:{port}/messages"']
        delivery = {key: value for key, value in table.items() if isinstance(value, int)}
        if batch is not None:
            delivery.pop("concurrency", None)
            delivery["batch_size"] = batch
            if batch > 1:
                delivery.update(concurrency=max(8, batch), batch_linger_ms=linger_ms)
        lines += [f"{key} = {value}" for key, value in delivery.items()]
        if http_client is not None:
            lines.append(f'http_client = "{http_client}"')
        lines.append("")
    path = directory / "renkei.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path, intake


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The child processes of `pid` (Linux /proc: each thread's `children`)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _children_cpu(buses: list[subprocess.Popen[bytes]]) -> float:
    """utime + stime of the bus processes' children (the simulators of `--with-simulators`)."""
    total = 0.0
    for bus in buses:
        for child in _children(bus.pid):
            with contextlib.suppress(OSError):
                total += _cpu_seconds(child)
    return total


def _counts(audit: Path) -> Counter[str]:
    if not audit.exists():
        return Counter()
    with sqlite3.connect(f"file:{audit}?mode=ro", uri=True, timeout=10) as db:
        return Counter(dict(db.execute("SELECT event, count(*) FROM audit_records GROUP BY event").fetchall()))


def _latencies(audit: Path) -> tuple[list[float], list[float], Counter[str], dict[str, list[float]]]:
    """Per delivery and per change (to its last delivery): delivered.at - accepted.at, in ms; and
    per hop (`HOPS`): where that time went, each hop from one record of the trail to the next."""
    with sqlite3.connect(f"file:{audit}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT event, message_id, at FROM audit_records WHERE event IN "
                          "('received', 'accepted', 'routed', 'delivered', 'dead_lettered') ORDER BY seq").fetchall()
    stamps: dict[str, dict[str, float]] = {"received": {}, "accepted": {}, "routed": {}}
    last: dict[str, float] = {}
    per_delivery: list[float] = []
    hops: dict[str, list[float]] = {hop: [] for hop in HOPS}
    events: Counter[str] = Counter()
    for event, message_id, at in rows:
        events[event] += 1
        when = datetime.fromisoformat(at).timestamp()
        if event in stamps:
            stamps[event].setdefault(message_id, when)  # a change's first: one routed record per change
        elif event == "delivered" and message_id in stamps["accepted"]:
            per_delivery.append(1000 * (when - stamps["accepted"][message_id]))
            last[message_id] = max(last.get(message_id, when), when)
            if message_id in stamps["routed"]:
                hops["routed_to_delivered"].append(1000 * (when - stamps["routed"][message_id]))
    accepted, received, routed = stamps["accepted"], stamps["received"], stamps["routed"]
    hops["received_to_accepted"] = [1000 * (accepted[m] - received[m]) for m in accepted if m in received]
    hops["accepted_to_routed"] = [1000 * (routed[m] - accepted[m]) for m in routed if m in accepted]
    per_change = [1000 * (last[m] - accepted[m]) for m in last]
    return per_delivery, per_change, events, hops


#: the hops of a change's life the trail stamps: the intake's commit, the router (its queue and
#: its batch), a deliverer (its queue, its batch and the HTTP round trip)
HOPS = ("received_to_accepted", "accepted_to_routed", "routed_to_delivered")


def met(target: float | None, p99: float, load: Load, accepted: int, answered_seconds: float) -> bool:
    """Is the target met? Only when the load was carried: every change accepted, and answered at
    the rate offered (within 5 %, `KEPT_UP`). The latency starts at `accepted`, so the time a
    request waited before the intake took it is not in the p99: a bus that answers 364 of 1,000
    changes a second has a short p99 and a growing queue outside it."""
    return (target is not None and p99 < target and accepted == load.changes
            and load.changes / answered_seconds >= KEPT_UP * load.rate)


def _quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return round(values[0], 1) if values else 0.0
    return round(statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1], 1)


async def _offer(url: str, bodies: list[bytes], rate: int) -> tuple[list[str], float, float]:
    """POST every body open-loop at `rate` per second; each body's answer (the status, or the HTTP
    code, or the client error), seconds offered, seconds until the last answer.

    CONNECTIONS senders share one aiohttp session of as many connections and take the requests
    as they come due (a request waits in the queue while every sender is busy). The generator
    shares the two cores with the bus, so its CPU is kept small: httpx, one client of one
    connection per sender, took 1.8 ms of CPU per request (5.4 s in 15 s at 200/s, 16.5 s at
    1,000/s: over a core); aiohttp takes 0.3–0.6 ms (1.7–2.0 s and 4.6 s; bench/README.md, stop
    28). One httpx client with a pool of 64 had cost 8 ms a request (httpcore checks every
    pooled connection at each request).

    The connections are opened (64 concurrent GET /healthz) before the clock starts: opened as
    the senders started, on a busy machine the first seconds' requests went out late, in one
    burst, which the bus then answered, routed and delivered as one backlog."""
    answers = [""] * len(bodies)
    due: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
    headers = {"content-type": "application/xml", "x-renkei-source": "jumin"}
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS),
                                    timeout=aiohttp.ClientTimeout(total=300))
    health = url.rsplit("/v1/", 1)[0] + "/healthz"

    async def warm() -> None:
        async with session.get(health) as response:
            await response.read()

    await asyncio.gather(*(warm() for _ in range(CONNECTIONS)))

    async def sender() -> None:
        while (item := await due.get()) is not None:
            i, body = item
            for attempt in range(3):  # a kept-alive connection the server closed meanwhile: send again
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        answer = await response.read()
                        status = orjson.loads(answer).get("status") if response.status < 500 else None
                    if status == "duplicate" and attempt:  # the lost answer's request was taken
                        status = "accepted"
                    answers[i] = str(status or f"HTTP {response.status}")
                    break
                except aiohttp.ClientConnectionError as exc:
                    answers[i] = type(exc).__name__
                except (aiohttp.ClientError, ValueError) as exc:
                    answers[i] = type(exc).__name__
                    break

    senders = [asyncio.create_task(sender()) for _ in range(CONNECTIONS)]
    started = time.perf_counter()
    for i, body in enumerate(bodies):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait((i, body))
    offered = time.perf_counter() - started
    for _ in senders:
        due.put_nowait(None)
    try:
        await asyncio.gather(*senders)
    finally:
        await session.close()
    return answers, offered, time.perf_counter() - started


async def _until_drained(audit: Path, accepted: int, deliveries: int, within: float) -> Counter[str]:
    """Wait until every change is accepted and every delivery delivered or dead-lettered."""
    deadline = time.monotonic() + within
    while True:
        counts = _counts(audit)
        if counts["accepted"] >= accepted and counts["delivered"] + counts["dead_lettered"] >= deliveries:
            return counts
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bus did not drain within {within:.0f} s: {dict(counts)}")
        await asyncio.sleep(0.5)


def _wait_for_line(log: Path, line: str, process: subprocess.Popen[bytes] | None, within: float = 60.0,
                   times: int = 1) -> None:
    """Wait until `process` (None: none to wait for) has written `line` to `log` (`times`: the
    processes writing to `log` have written it that many times between them)."""
    deadline = time.monotonic() + within
    while process is not None and log.read_text(errors="replace").count(line) < times:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{line.strip()} did not start: {log.read_text(errors='replace')[-1500:]}")
        time.sleep(0.2)


class _Exited(Exception):
    pass


async def _wait_ready(url: str, buses: list[subprocess.Popen[bytes]], within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if any(bus.poll() is not None for bus in buses):
                raise _Exited
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError(f"renkei run's intake did not answer within {within:.0f} s")


async def _drive(buses: list[subprocess.Popen[bytes]], port: int, audit: Path, bodies: list[bytes], rate: int,
                 routed: list[int], drain_within: float) -> dict[str, Any]:
    """Wait for the intake, offer the load, wait for the drain; what was seen meanwhile (the CPU
    and RSS of the bus's processes, summed, and the CPU of their children, the simulators)."""
    await _wait_ready(f"http://127.0.0.1:{port}/healthz", buses)
    load_start, own_cpu = report.load(), time.process_time()
    cpu_start = sum(_cpu_seconds(bus.pid) for bus in buses)
    sims_start = _children_cpu(buses)
    answers, offered, answered = await _offer(f"http://127.0.0.1:{port}/v1/messages", bodies, rate)
    accepted = [i for i, answer in enumerate(answers) if answer == "accepted"]
    deliveries = sum(routed[i] for i in accepted)  # what the route table gives for the accepted changes
    counts = await _until_drained(audit, len(accepted), deliveries, drain_within)
    return {"answers": Counter(answers), "deliveries": deliveries, "offered": offered, "answered": answered,
            "counts": counts, "cpu": sum(_cpu_seconds(bus.pid) for bus in buses) - cpu_start,
            "rss": sum(report.rss_mb(bus.pid) for bus in buses),
            "sims_cpu": _children_cpu(buses) - sims_start,
            "own_cpu": time.process_time() - own_cpu, "load": {"start": load_start, "end": report.load()}}


def run_one(load: Load, *, broker_url: str | None = None, seed: int = 1, drain_within: float = 900.0,
            batch: int | None = None, linger_ms: int = 0, roles_apart: bool = False,
            bus_linger_ms: int | None = None, http_client: str | None = None) -> dict[str, Any]:
    """One load against a fresh `renkei run --with-simulators`; its figures. `roles_apart`: the
    bus is two processes, `--role router` (intake and router) and `--role deliver` (whose child
    serves the simulators)."""
    catalog = Catalog.load()
    ks = catalog.get(KIND)
    records = list(sample_records(KIND, catalog, seed=seed, n=load.changes))
    bodies = [ks.to_xml(r) for r in records]
    routes, ids = RouteTable.load(routes_dir(), catalog), Pseudonymizer(BENCH_KEY.encode())
    routed = [len(routes.route(r, r["municipality_code"], message_id=ids.message_id(
        r["municipality_code"], r["address_number"], int(r["history_number"])))) for r in records]
    del records
    with tempfile.TemporaryDirectory(prefix="renkei-bench-run-") as tmp:
        config, port = write_config(Path(tmp), batch, linger_ms, bus_linger_ms, http_client)
        delivery = _delivery_of(config)
        env = {**os.environ, "RENKEI_PSEUDONYM_KEY": BENCH_KEY}
        env.pop("RENKEI_BROKER_URL", None)
        if broker_url:
            env["RENKEI_BROKER_URL"] = broker_url
        log = Path(tmp) / "renkei.log"
        with log.open("wb") as out:
            buses = [_start_bus(config, role, ("--with-simulators",), out, env)
                     for role in (("router", "deliver") if roles_apart else ("all",))]
        audit = StateDir(Path(tmp) / "state").audit_file
        try:
            # every process has started (its "ready" line): /healthz answers as soon as the intake
            # listens, while the rest of the start still holds the event loop; load offered then
            # measured seconds of start-up (the first requests answered together, late)
            _wait_for_line(log, "renkei run: ready", buses[-1], within=90.0, times=len(buses))
            seen = asyncio.run(_drive(buses, port, audit, bodies, load.rate, routed, drain_within))
        except _Exited:
            said = log.read_text(errors="replace")[-1500:]
            codes = [bus.returncode for bus in buses]
            raise RuntimeError(f"renkei run exited {codes}: {said}") from None
        finally:
            for bus in buses:
                bus.send_signal(signal.SIGTERM)
            for bus in buses:
                try:
                    bus.wait(60)
                except subprocess.TimeoutExpired:
                    bus.kill()
                    bus.wait()
        per_delivery, per_change, events, hops = _latencies(audit)
    answers, counts, cpu, deliveries = seen["answers"], seen["counts"], seen["cpu"], seen["deliveries"]
    if events["accepted"] < answers["accepted"] or not answers["accepted"]:  # a timed-out request may be kept
        raise RuntimeError(f"the intake's answers {dict(answers)} and the trail's {dict(events)} disagree")
    target = TARGETS.get(load.rate)
    p99 = _quantile(per_delivery, 0.99)
    return {
        "rate_offered": load.rate, "seconds_offered": load.seconds, "changes": load.changes,
        "answers": dict(sorted(answers.items())), "not_accepted": load.changes - answers["accepted"],
        "achieved_offer_rate": round(load.changes / seen["offered"], 1),
        "accepted_rate": round(load.changes / seen["answered"], 1),
        "deliveries": len(per_delivery), "expected_deliveries": deliveries, "dead_lettered": counts["dead_lettered"],
        "latency_ms": {"p50": _quantile(per_delivery, 0.5), "p95": _quantile(per_delivery, 0.95), "p99": p99,
                       "max": round(max(per_delivery), 1) if per_delivery else 0.0,
                       "p99_per_change": _quantile(per_change, 0.99)},
        "hops_ms": {hop: {"p50": _quantile(values, 0.5), "p99": _quantile(values, 0.99)}
                    for hop, values in hops.items()},
        "bus_cpu_seconds": round(cpu, 3), "bus_cpu_ms_per_change": round(1000 * cpu / load.changes, 3),
        "load_generator_cpu_seconds": round(seen["own_cpu"], 3), "bus_rss_mb": round(seen["rss"], 1),
        "target_p99_ms": target,
        "passed": met(target, p99, load, answers["accepted"], seen["answered"]),
        "broker": "rabbitmq" if broker_url else "embedded",
        "processes": ["renkei run --role router", "renkei run --role deliver"] if roles_apart else ["renkei run"],
        "bus_batch_linger_ms": bus_linger_ms,
        "delivery": delivery,
        "http_client": http_client or "aiohttp",
        "simulators": "the bus's child process (--with-simulators)",
        "simulators_cpu_seconds": round(seen["sims_cpu"], 3),
        "load_average": seen["load"],
    }


def _start_bus(config: Path, role: str, options: tuple[str, ...], out: Any, env: dict[str, str],
               ) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bus.cli", "run", "--config", str(config), "--role", role,
                             *options], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=report.ROOT)


def _delivery_of(config: Path) -> dict[str, int]:
    """The delivery keys of the generated config's first destination (every one has the same)."""
    first = next(iter(tomllib.loads(config.read_text(encoding="utf-8"))["destinations"].values()))
    return {"batch_size": first.get("batch_size", 1), "concurrency": first.get("concurrency", 8),
            "batch_linger_ms": first.get("batch_linger_ms", 0)}


def run(loads: list[Load], out: Path, broker_url: str | None = None, batch: int | None = None,
        linger_ms: int = 0, roles_apart: bool = False,
        bus_linger_ms: int | None = None, http_client: str | None = None) -> dict[str, Any]:
    runs = []
    for load in loads:
        r = run_one(load, broker_url=broker_url, batch=batch, linger_ms=linger_ms,
                    roles_apart=roles_apart, bus_linger_ms=bus_linger_ms, http_client=http_client)
        runs.append(r)
        lat = r["latency_ms"]
        print(f"run {load.rate:>5}/s x {load.seconds:g} s: accepted {r['accepted_rate']:7.1f}/s  "
              f"p50 {lat['p50']:8.1f} ms  p99 {lat['p99']:8.1f} ms (target < {r['target_p99_ms']} ms)  "
              f"{r['bus_cpu_ms_per_change']:.2f} ms CPU/change  load {r['load_average']['start'][0]:.2f}", flush=True)
        print("    p50/p99 per hop: " + ", ".join(f"{hop.replace('_to_', ' → ')} {h['p50']:.1f}/{h['p99']:.1f} ms"
                                            for hop, h in r["hops_ms"].items()), flush=True)
    return report.write(out, {
        "benchmark": "run_latency",
        "command": ("renkei run --role router + renkei run --role deliver" if roles_apart else "renkei run")
        + " --with-simulators (a child process; examples/renkei.toml's destinations), "
        "HTTP intake",
        "measured": "per delivery: audit 'delivered' at minus the message's audit 'accepted' at",
        "target": {str(rate): {"p99_ms": ms} for rate, ms in TARGETS.items()}, "runs": runs,
        "passed": all(r["passed"] for r in runs),
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=Load.parse, action="append", metavar="RATExSECONDS",
                        help=f"offered load, repeatable (default: {' and '.join(DEFAULT_LOADS)})")
    parser.add_argument("--broker-url", help="RabbitMQ URL (a vhost of its own); default the embedded broker")
    parser.add_argument("--batch", type=int, default=None, metavar="N",
                        help="every destination takes batches of up to N changes (default: as examples/renkei.toml "
                             "says, batches of 100; 1: one request each)")
    parser.add_argument("--linger-ms", type=int, default=0, help="with --batch: batch_linger_ms of each destination")
    parser.add_argument("--roles-apart", action="store_true",
                        help="the bus as two processes: `renkei run --role router` (intake and router) and "
                             "`--role deliver` (every deliverer), on one state directory")
    parser.add_argument("--bus-linger-ms", type=int, default=None, metavar="MS",
                        help="[bus] batch_linger_ms: how long the router and deliverers may wait for a batch "
                             "to fill (default: the bus's default)")
    parser.add_argument("--http-client", choices=("aiohttp", "httpx"), default=None,
                        help="every destination's `http_client` (default: the sinks' default, aiohttp)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if (args.batch is not None and not 1 <= args.batch <= 1000) or not 0 <= args.linger_ms <= 1000:
        parser.error(f"--batch must be 1..1000 and --linger-ms 0..1000, got {args.batch}, {args.linger_ms}")
    if args.bus_linger_ms is not None and not 0 <= args.bus_linger_ms <= 1000:
        parser.error(f"--bus-linger-ms must be 0..1000, got {args.bus_linger_ms}")
    result = run(args.load or [Load.parse(x) for x in DEFAULT_LOADS], args.out, args.broker_url, args.batch,
                 args.linger_ms, args.roles_apart, args.bus_linger_ms, args.http_client)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
