"""The simulators in a process of their own: a `SimulatorCluster` served by a child Python
process, so that on two cores the bus runs on one and the receiving systems on the other.

    async with SimulatorProcess(store="out/received") as sims:
        sink = HttpSink(sims.messages_url("zei"))
        ...
        states = await sims.snapshot()      # system → SimulatorState: what each applied, its counters
    sims.cpu_seconds                        # the child's CPU (user + system), known once stopped

In-process (`SimulatorCluster`) the receivers shared the bus's one event loop: in `renkei demo`
they took 43 % of its busy samples (bench/README.md, issue 10). Apart, the bus's figures are
its own and the simulators' CPU is reported beside them.

`renkei run --with-simulators` serves the simulators this way too, each on the port of its
destination's URL (`ports`).

The child, ``python -m adapters.simulators.apart --store DIR [--port SYSTEM=PORT ...] [SYSTEM
...]``, prints one JSON line ``{"urls": {system: base url}}`` once every server listens (or
``{"error": "..."}`` and exits 2 when one cannot: a port in use), and stops when its standard
input closes (the parent stopped it, or died, however) or on SIGTERM/SIGINT; its last line is
``{"cpu_seconds": S}``. What each simulator applied is read back from its store (its log,
one line per message, adapters.simulators.state); the counters from ``GET /received``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import resource
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from adapters.simulators.cluster import SimulatorCluster
from adapters.simulators.state import SYSTEMS, SimulatorState
from bus.errors import ConfigError
from bus.heap import settle_heap

__all__ = ["SimulatorProcess", "main"]

_COUNTERS = ("effects", "duplicates", "rejected", "failed", "requests", "batches")


class SimulatorProcess:
    """The simulators of `systems`, served by a child process, each on its own loopback port;
    `store` (required) is where they keep what they applied, as `SimulatorCluster`'s store."""

    def __init__(self, systems: Sequence[str] = tuple(SYSTEMS), *, store: str | Path,
                 start_within: float = 60.0, ports: Mapping[str, int] | None = None,
                 own_session: bool = False) -> None:
        unknown = [s for s in systems if s not in SYSTEMS]
        if unknown:
            raise ConfigError(f"no simulator for {unknown}; known: {', '.join(SYSTEMS)}")
        self.systems = list(systems)
        self.store = Path(store)
        self.start_within = start_within
        self.ports = dict(ports or {})  # system → its fixed port (the others: any free port)
        #: the child in a session of its own (`renkei run`): a terminal's Ctrl-C reaches the parent
        #: alone, which stops the child after its own deliveries in flight have reached it (`stop`);
        #: else (the demo) the child shares the parent's session and its signals
        self.own_session = own_session
        self.urls: dict[str, str] = {}
        self.cpu_seconds: float | None = None
        #: the child's garbage-collector thresholds as it ended (bus.heap.settle_heap sets them)
        self.gc_thresholds: tuple[int, ...] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> SimulatorProcess:
        self._process = process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.simulators.apart", "--store", str(self.store),
            *(f"--port={system}={port}" for system, port in self.ports.items()), *self.systems,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=self.own_session)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), self.start_within)
        except TimeoutError:
            await self.stop()
            raise ConfigError(f"the simulators' process did not start within {self.start_within:.0f} s") from None
        said = json.loads(line) if line.startswith(b"{") else {}
        if "urls" not in said:
            code = await process.wait()
            self._process = None
            raise ConfigError(said.get("error") or f"the simulators' process ended while starting (exit status {code})")
        self.urls = said["urls"]
        self._client = httpx.AsyncClient(timeout=30.0)
        return self

    async def stop(self) -> None:
        """Close the child's standard input and wait for it (killed if it takes over 15 s)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        try:
            rest = await asyncio.wait_for(process.stdout.read(), 15.0)
            await asyncio.wait_for(process.wait(), 15.0)
        except TimeoutError:
            process.kill()
            await process.wait()
            return
        for line in rest.splitlines():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                found = json.loads(line)
                self.cpu_seconds = float(found["cpu_seconds"])
                self.gc_thresholds = tuple(found.get("gc_thresholds") or ()) or None

    async def __aenter__(self) -> SimulatorProcess:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def url(self, system: str) -> str:
        if system not in self.urls:
            raise ConfigError(f"these simulators do not include {system!r}; they are {', '.join(self.urls)}")
        return self.urls[system]

    def messages_url(self, system: str) -> str:
        """Where a sink posts: ``<base>/messages``."""
        return f"{self.url(system)}/messages"

    async def counts(self, system: str) -> dict[str, int]:
        """The counters of `system` (``GET /received``, without the list of messages)."""
        if self._client is None:
            raise ConfigError("the simulators' process is not running")
        response = await self._client.get(f"{self.url(system)}/received", params={"limit": "0"})
        response.raise_for_status()
        counts: dict[str, int] = response.json()["counts"]
        return counts

    async def effects(self) -> int | None:
        """Messages applied by all of them so far (None when one did not answer: for progress lines)."""
        try:
            return sum([(await self.counts(system))["effects"] for system in self.urls])
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    async def snapshot(self) -> dict[str, SimulatorState]:
        """system → its state as the child holds it now: the messages applied (read from the
        store), and the counters."""
        states: dict[str, SimulatorState] = {}
        for system in self.urls:
            counts = await self.counts(system)
            state = SimulatorState(system, store=self.store / system)
            for name in _COUNTERS:
                setattr(state, name, int(counts[name]))
            states[system] = state
        return states


async def _serve(store: str, systems: list[str], ports: dict[str, int]) -> None:
    from bus.catalog import Catalog

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    closed = asyncio.ensure_future(stdin.read())  # returns at end of file: the parent is gone
    closed.add_done_callback(lambda _: stop.set())
    try:
        cluster = await SimulatorCluster(systems, catalog=Catalog.load(), store=store, ports=ports).start()
    except ConfigError as exc:  # a port in use: said on the line the parent waits for
        print(json.dumps({"error": str(exc)}), flush=True)
        raise SystemExit(2) from None
    settle_heap()  # the collector set for a long-running server (bus.heap): no full pass over the schemas mid-load
    try:
        print(json.dumps({"urls": cluster.urls}), flush=True)
        await stop.wait()
    finally:
        await cluster.stop()
        closed.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters.simulators.apart",
                                     description="Serve the simulators until standard input closes.")
    parser.add_argument("--store", required=True, help="where the simulators keep what they applied")
    parser.add_argument("--port", action="append", default=[], metavar="SYSTEM=PORT",
                        help="serve SYSTEM on this port (default: any free port)")
    parser.add_argument("systems", nargs="*", metavar="SYSTEM", help="the systems (default: all)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"no simulator for {unknown}; known: {', '.join(SYSTEMS)}")
    ports: dict[str, int] = {}
    for given in args.port:
        system, _, port = given.partition("=")
        if system not in SYSTEMS or not port.isdigit():
            parser.error(f"--port {given!r}: expected SYSTEM=PORT with SYSTEM one of {', '.join(SYSTEMS)}")
        ports[system] = int(port)
    asyncio.run(_serve(args.store, list(args.systems) or list(SYSTEMS), ports))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
                      "gc_thresholds": list(gc.get_threshold())}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
