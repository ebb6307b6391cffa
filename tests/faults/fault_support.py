"""The machinery of the fault scenarios: the faults RabbitMQ node, bus workers as real
processes (`renkei run`) that can be killed -9, a feeder that posts a steady stream of
resident changes to the HTTP intake, and a TCP proxy that can cut the network.

Simulators run in the test process (adapters.simulators.SimulatorCluster), so the checker
reads what they applied directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import processes
from checker import Checker, Report
from processes import free_ports

from adapters.simulators import SYSTEMS, SimulatorCluster, SimulatorState
from bus.catalog import Catalog
from bus.delivery.store import DeliveryStore, Parked
from bus.synthetic import Registry

ROOT = Path(__file__).resolve().parents[2]
PSEUDONYM_KEY = "renkei-faults-test-key-0123456789"
SCRIPT = ROOT / "scripts" / "rabbitmq.sh"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"

LOG_LEVEL = os.environ.get("RENKEI_FAULTS_LOG_LEVEL", "warning")  # of the workers (their logs: <tmp>/<role>.log)
#: short retry tiers so a scenario's retries happen within seconds
RETRY = {"attempts": 2, "backoff": 0.05, "tiers": [0.2, 0.5, 1.0], "deadline": 600, "poison_after": 3}


# -- the faults node ---------------------------------------------------------------------

@dataclass(frozen=True)
class FaultsNode:
    """This suite's own RabbitMQ node (never the shared test node: we kill this one)."""

    dir: Path
    port: int
    nodename: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "RENKEI_RABBITMQ_DIR": str(self.dir), "RENKEI_RABBITMQ_PORT": str(self.port),
                "RENKEI_RABBITMQ_NODENAME": self.nodename}

    def script(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                              env=self.env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"scripts/rabbitmq.sh {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout.strip()

    def ctl(self, *args: str) -> str:
        """rabbitmqctl against this node (HOME is the node directory: the cookie matches)."""
        env = {**self.env, "HOME": str(self.dir)}
        done = subprocess.run([CTL, "-q", "-n", self.nodename, *args], capture_output=True, text=True,
                              timeout=60, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {(done.stdout + done.stderr).strip()}")
        return done.stdout.strip()

    def vhost(self, name: str) -> str:
        return self.script("vhost", name)

    def kill(self) -> None:
        self.script("kill")

    def start_keeping_data(self) -> None:
        self.script("start", "--keep")

    def restart(self) -> None:
        self.script("restart")


# -- configuration and processes ---------------------------------------------------------

def write_config(path: Path, *, destinations: dict[str, str], intake_port: int, broker_url: str | None,
                 retry: dict[str, Any] | None = None, concurrency: int = 8) -> Path:
    lines = ["[bus]", 'state_dir = "var"']
    if broker_url:
        lines.append(f'broker_url = "{broker_url}"')
    lines += ["", "[intake]", f"http_port = {intake_port}", "",
              "[logging]", 'format = "json"', f'level = "{LOG_LEVEL}"', "", "[retry]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in (retry or RETRY).items()]
    for name, url in destinations.items():
        lines += ["", f"[destinations.{name}]", 'transport = "http"', f'url = "{url}"', f"concurrency = {concurrency}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def bus_env() -> dict[str, str]:
    env = processes.bus_env(PSEUDONYM_KEY)
    env["PYTHONPATH"] = str(Path(__file__).parent / "debug_site")  # SIGUSR2: dump the asyncio tasks
    return env


class Worker:
    """One `renkei run` process (a role of the bus); its output goes to a file."""

    def __init__(self, config: Path, name: str, *args: str) -> None:
        self.config, self.name, self.args = config, name, args
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def log(self) -> Path:
        return self.config.parent / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, within: float = 60.0) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - started once, waited on below without blocking
                [sys.executable, "-m", "bus.cli", "run", "--config", str(self.config), *self.args],
                stdout=out, stderr=subprocess.STDOUT, env=bus_env(), cwd=self.config.parent,
            )
        marker = f"--- start {self.starts}\n"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            text = self.log.read_text(encoding="utf-8", errors="replace")
            if "renkei run: ready" in text.rsplit(marker, 1)[-1]:
                return
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name} did not become ready (exit {self.proc.poll()}):\n{self.tail()}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1

    async def stop(self, within: float = 30.0) -> int | None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.poll() if proc else None
        proc.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while proc.poll() is None and loop.time() < deadline:  # noqa: ASYNC110 - polling a child process
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGUSR2)
            await asyncio.sleep(1.0)
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"{self.name} did not stop within {within} s:\n{self.tail()}")
        return proc.returncode

    def rss_mb(self) -> float:
        """Resident set size of the process (VmRSS), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-n:] if self.log.exists() else ""


async def renkei(config: Path, *args: str, within: float = 60.0) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bus.cli", *args, "--config", str(config), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=bus_env(), cwd=config.parent)
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode == 0, f"renkei {' '.join(args)} exited {proc.returncode}: {out.decode()}{err.decode()}"
    return out.decode()


# -- the stream of changes -----------------------------------------------------------------

def changes(catalog: Catalog, n: int, seed: int) -> list[tuple[bytes, dict[str, Any]]]:
    """`n` valid resident changes from a small registry (so many residents change several
    times: per-resident order is tested), as (XML, record), in registry order."""
    ks = catalog.get("jumin.idou")
    registry = Registry(seed=seed, municipalities=("131016", "011002"), households=15)
    return [(ks.to_xml(record), record) for record in registry.events(n)]


@dataclass
class Feeder:
    """Posts changes to the intake at `rate` per second (None: as fast as it answers), one
    partition of residents per task so each resident's changes go in registry order. A
    submission the intake could not answer (refused connection, 503, a cut) is sent again
    — as a source does — until it is answered."""

    url: str
    items: list[tuple[bytes, dict[str, Any]]]
    rate: float | None = 50.0
    partitions: int = 8
    submit: Callable[[bytes], Any] | None = None  # in-process intake instead of HTTP
    accepted: list[dict[str, Any]] = field(default_factory=list)
    accepted_at: list[float] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    retries: int = 0
    lost_answers: int = 0  # "duplicate" to a resubmission: the first try was accepted
    slowest: float = 0.0
    sent: int = 0

    def __post_init__(self) -> None:
        self._next = 0.0
        self.done = asyncio.Event()

    async def run(self) -> None:
        queues: list[list[tuple[bytes, dict[str, Any]]]] = [[] for _ in range(self.partitions)]
        for body, record in self.items:
            queues[zlib.crc32(record["address_number"].encode()) % self.partitions].append((body, record))
        self._next = time.monotonic()
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0)) as client:
            await asyncio.gather(*(self._feed(client, q) for q in queues))
        self.done.set()

    async def _pace(self) -> None:
        if self.rate is None:
            return
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        await asyncio.sleep(slot - now)

    async def _feed(self, client: httpx.AsyncClient, items: list[tuple[bytes, dict[str, Any]]]) -> None:
        for body, record in items:
            await self._pace()
            started = time.monotonic()
            tries = 0
            while True:
                tries += 1
                status = await self._post(client, body)
                if status is not None:
                    break
                self.retries += 1
                await asyncio.sleep(0.2)
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.sent += 1
            if status in ("accepted", "duplicate"):
                if status == "duplicate":
                    self.lost_answers += 1
                self.accepted.append(record)
                self.accepted_at.append(time.monotonic())
            else:
                self.refused.append(status)

    async def _post(self, client: httpx.AsyncClient, body: bytes) -> str | None:
        """The intake's answer, or None when it must be sent again."""
        if self.submit is not None:
            try:
                return str((await self.submit(body)).status)
            except Exception:  # the in-process intake raises BrokerError while the broker is away
                return None
        try:
            answer = await client.post(self.url, content=body, headers={"content-type": "application/xml"})
        except httpx.TransportError:
            return None
        if answer.status_code == 202:
            return "accepted"
        if answer.status_code == 200:
            return "duplicate"
        if answer.status_code >= 500:
            return None
        return f"{answer.status_code}: {answer.text[:200]}"


async def at(seconds: float, since: float) -> None:
    """Sleep until `seconds` after `since` (a loop time)."""
    await asyncio.sleep(max(0.0, since + seconds - asyncio.get_running_loop().time()))


async def eventually(check: Callable[[], bool], what: str, within: float = 60.0, poll: float = 0.2) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(poll)


# -- the network between bus and broker --------------------------------------------------

class CuttableProxy:
    """A TCP proxy in front of the broker that can cut the network: `cut()` drops every
    connection and refuses new ones (the port stops listening) until `restore()`."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.listen_port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.listen_port)
        self.listen_port = int(self._server.sockets[0].getsockname()[1])
        return self.listen_port

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            with contextlib.suppress(Exception):
                sock = transport.get_extra_info("socket")
                if sock is not None:  # RST, not FIN: as a broken network looks to the peer
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.cut()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()


def kill_times(seed: int, n: int, start: float, end: float, gap: float) -> list[float]:
    """`n` seeded random moments in [start, end], at least `gap` seconds apart."""
    rng = random.Random(seed)
    while True:
        times = sorted(rng.uniform(start, end) for _ in range(n))
        if all(b - a >= gap for a, b in itertools.pairwise(times)):
            return times


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (two runs of this suite must not kill each other's broker)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- one scenario: simulators, bus workers, a feed, the check ------------------------------

class Scenario:
    """The simulators of `systems` in this process, the bus as `renkei run` workers (one
    per role: `router` = intake + router, `deliver` = every deliverer; or one `all`), and a
    feeder of `n` changes. `settle()` waits until every expected delivery was applied, stops
    the workers and returns the checker's report."""

    def __init__(self, tmp: Path, name: str, catalog: Catalog, *, broker_url: str | None,
                 systems: tuple[str, ...] = tuple(SYSTEMS), roles: tuple[str, ...] = ("router", "deliver"),
                 n: int = 500, seed: int = 1, rate: float | None = 50.0, concurrency: int = 8) -> None:
        self.tmp, self.name, self.catalog = tmp, name, catalog
        self.broker_url, self.systems, self.roles = broker_url, systems, roles
        self.concurrency = concurrency
        self.items = changes(catalog, n, seed)
        self.checker = Checker(catalog, PSEUDONYM_KEY.encode(), systems)
        self.sims = SimulatorCluster(systems, catalog=catalog, store=str(tmp / "received"))
        self.intake_port = free_ports(1)[0]
        self.feeder = Feeder(f"http://127.0.0.1:{self.intake_port}/v1/messages", self.items, rate=rate)
        self.workers: dict[str, Worker] = {}
        self.config = tmp / "renkei.toml"
        self._feeding: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Scenario:
        await self.sims.start()
        write_config(self.config, destinations={n: self.sims.messages_url(n) for n in self.systems},
                     intake_port=self.intake_port, broker_url=self.broker_url, concurrency=self.concurrency)
        for role in self.roles:
            self.workers[role] = Worker(self.config, role, "--role", role)
        await asyncio.gather(*(w.start() for w in self.workers.values()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._feeding is not None and not self._feeding.done():
            self._feeding.cancel()
            await asyncio.gather(self._feeding, return_exceptions=True)
        for worker in self.workers.values():
            with contextlib.suppress(Exception):
                await worker.stop()
        await self.sims.stop()

    def state(self, system: str) -> SimulatorState:
        return self.sims.state(system)

    def feed(self) -> asyncio.Task[None]:
        self._feeding = asyncio.get_running_loop().create_task(self.feeder.run())
        return self._feeding

    async def settle(self, within: float = 60.0, **extra: Any) -> Report:
        """Wait for the feed and for every expected delivery, stop the workers, check."""
        if self._feeding is not None:
            await asyncio.wait_for(self._feeding, within)
        expected = self.checker.expected(self.feeder.accepted)
        states = self.sims.states
        started = time.monotonic()
        with contextlib.suppress(AssertionError):
            await eventually(lambda: self.checker.missing(expected, states) == 0, "every delivery applied",
                             within=within, poll=0.25)
        drain = time.monotonic() - started
        for worker in self.workers.values():
            assert await worker.stop() == 0, f"{worker.name} did not stop cleanly:\n{worker.tail()}"
        extra = {"retries": self.feeder.retries, "lost_answers": self.feeder.lost_answers,
                 "drain_s": round(drain, 1), "parked": len(self.parked()), "refused": len(self.feeder.refused),
                 **extra}
        return self.checker.check(self.name, self.feeder.accepted, states, expected=expected, **extra)

    def parked(self) -> list[Parked]:
        store = DeliveryStore(self.tmp / "var" / "delivery.sqlite")
        try:
            return store.parked_all()
        finally:
            store.close()

    def logs(self) -> str:
        return "\n".join(f"== {w.name}\n{w.tail()}" for w in self.workers.values())
