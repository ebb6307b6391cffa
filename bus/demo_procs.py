"""The bus on every core: its router and deliverers in processes of their own over the one embedded
broker file.

    group = BusProcesses(settings, split(destinations, 3))
    await group.start()             # a child with the router, a child with the deliverers
    ...                             # this process: the intake (BusParts(router=False, deliverers=False))
    ended = await group.first_end() # a child that ended before it was asked to: what happened
    reports = await group.stop()    # each child's CPU, what its null sinks received, its lock waits

The embedded broker already serves several processes on one file (a publish or settle of one is
seen by the others through `PRAGMA data_version`; the leases of a killed process are taken back),
and so do the state, delivery and audit stores (`renkei run --role router|deliver` runs that way).
`renkei demo` and `bench.embedded` use it so that the intake, the router and the deliverers share
the cores instead of one event loop (issue 10: one process's loop was ~90 % busy on one core).

A child is ``python -m bus.demo_procs``: it reads one line from its standard input (its `Child`,
pickled: the parent's settings, pseudonym key included, never on a command line), starts, prints
``{"ready": pid}``, and stops when its standard input closes (the parent stopped it, or died,
however: Ctrl-C, kill, an error) or at SIGTERM/SIGINT; on Linux it also asks the kernel for a
SIGTERM when its parent dies. Its last line is its report (`ChildReport`). A child that ends on its
own is a failure the parent reports (`first_end`); nothing is restarted: the demo fails loudly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import gc
import json
import os
import pickle
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bus.errors import ConfigError
from bus.settings import Settings

__all__ = ["BusProcesses", "Child", "ChildReport", "main", "split"]

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True, slots=True)
class Child:
    """What one child runs: the router or not, the deliverers of `destinations` with `settings`' sinks
    (or null sinks that only count, for benchmarks), logging to `log_file` (appended; None:
    standard error)."""

    settings: Settings
    destinations: tuple[str, ...]
    router: bool = False  # the router (the parent then runs only the intake)
    null_sinks: bool = False
    log_file: Path | None = None
    log_level: str = "info"
    parent: int = 0  # the parent's pid: a child whose parent is already gone stops at once


@dataclass(slots=True)
class ChildReport:
    destinations: tuple[str, ...]
    exit_status: int | None = None
    cpu_seconds: float | None = None  # user + system, the whole child
    cpu_seconds_running: float | None = None  # from ready until stopped (the flow's share)
    received: Counter[str] = field(default_factory=Counter)  # null sinks: destination → deliveries
    contention: dict[str, float] = field(default_factory=dict)  # the broker file's writer-lock waits
    peak_rss_mb: float | None = None  # the child's peak resident set (Linux VmHWM)
    gc_thresholds: tuple[int, ...] | None = None  # the collector's, as the child ended (bus.heap)


def split(destinations: Sequence[str], processes: int) -> list[tuple[bool, tuple[str, ...]]]:
    """How the bus runs in `processes` processes: (router, destinations) of each child, the parent
    running the rest. 1: no child (the whole bus in the parent); 2: one child with every deliverer
    (the parent: intake and router); n > 2: one child with the router (the parent: the intake), and
    the deliverers dealt round-robin (sorted) over n - 2 more."""
    if processes < 1:
        raise ConfigError(f"the bus's processes must be at least 1, got {processes}")
    names = sorted(destinations)
    if processes <= 2:
        return [(False, tuple(names))] if processes == 2 else []
    spread = min(processes - 2, len(names))
    return [(True, ()), *((False, tuple(names[i::spread])) for i in range(spread))]


class BusProcesses:
    """One child process per `(router, destinations)` of `groups` (`split`); see the module docstring."""

    def __init__(self, settings: Settings, groups: Sequence[tuple[bool, tuple[str, ...]]], *,
                 null_sinks: bool = False, log_file: Path | None = None, log_level: str = "info",
                 start_within: float = 120.0) -> None:
        self.children = [Child(settings, names, router, null_sinks, log_file, log_level, os.getpid())
                         for router, names in groups]
        self.start_within = start_within
        self.reports = [ChildReport(child.destinations) for child in self.children]
        self._processes: list[asyncio.subprocess.Process] = []
        self._ends: list[asyncio.Task[int]] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes]

    async def start(self) -> None:
        """Start every child and wait until each is consuming; one that does not start stops them all."""
        try:
            for child in self.children:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bus.demo_procs", stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE)
                self._processes.append(process)
                self._ends.append(asyncio.ensure_future(process.wait()))
                assert process.stdin is not None
                process.stdin.write(base64.b64encode(pickle.dumps(child)) + b"\n")
                await process.stdin.drain()
            for process in self._processes:
                assert process.stdout is not None
                try:
                    line = await asyncio.wait_for(process.stdout.readline(), self.start_within)
                except TimeoutError:
                    raise ConfigError(f"the bus's process {len(self._processes) + 1} did not start "
                                      f"within {self.start_within:.0f} s") from None
                if not line:
                    code = await process.wait()
                    raise ConfigError(f"a process of the bus ended while starting (exit status {code})")
        except BaseException:
            await self.stop()
            raise

    async def first_end(self) -> str:
        """Wait until a child ends before `stop` asked it to; what happened, in one line."""
        if not self._ends:
            await asyncio.Event().wait()  # no child: never
        done, _ = await asyncio.wait(self._ends, return_when=asyncio.FIRST_COMPLETED)
        index = next(i for i, end in enumerate(self._ends) if end in done)
        return self.describe_end(index, self._ends[index].result())

    @property
    def router_apart(self) -> bool:
        return any(child.router for child in self.children)

    def describe_end(self, index: int, code: int) -> str:
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        child = self.children[index]
        runs = ["the router"] if child.router else []
        if child.destinations:
            runs.append("the deliverers of " + ", ".join(child.destinations))
        return (f"the bus's process {index + 2} (pid {self._processes[index].pid}; {' and '.join(runs)}) "
                f"ended while the bus ran ({how})")

    def ended_early(self) -> list[str]:
        """Every child that has ended on its own so far (before `stop`)."""
        return [self.describe_end(i, end.result()) for i, end in enumerate(self._ends)
                if end.done() and not self._stopping]

    async def stop(self) -> list[ChildReport]:
        """Close each child's standard input and wait for its report (killed after 30 s)."""
        self._stopping = True
        for process in self._processes:
            if process.stdin is not None and not process.stdin.is_closing():
                process.stdin.close()
        for process, report in zip(self._processes, self.reports, strict=False):
            assert process.stdout is not None
            try:
                rest = await asyncio.wait_for(process.stdout.read(), 30.0)
                report.exit_status = await asyncio.wait_for(process.wait(), 30.0)
            except TimeoutError:
                process.kill()
                report.exit_status = await process.wait()
                continue
            for line in rest.splitlines():
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    found = json.loads(line)["report"]
                    report.cpu_seconds = found["cpu_seconds"]
                    report.cpu_seconds_running = found["cpu_seconds_running"]
                    report.received = Counter(found["received"])
                    report.contention = found["contention"]
                    report.peak_rss_mb = found.get("peak_rss_mb")
                    report.gc_thresholds = tuple(found.get("gc_thresholds") or ()) or None
        await asyncio.gather(*self._ends, return_exceptions=True)
        self._processes.clear()
        self._ends.clear()
        return self.reports


# -- the child ----------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Linux: a SIGTERM when the parent dies (its standard input closing says it too)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # gone before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def _peak_rss_mb() -> float | None:
    """This process's peak resident set so far (Linux /proc VmHWM), in MB."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


async def _serve(child: Child, stdin: asyncio.StreamReader) -> dict[str, object]:
    from bus.app import Bus, BusParts
    from bus.brokers.embedded import EmbeddedBroker
    from bus.heap import settle_heap
    from bus.ports import FunctionSink, Outbound, Receipt, Sink

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    closed = asyncio.ensure_future(stdin.read())  # returns at end of file: the parent stopped us, or is gone
    closed.add_done_callback(lambda _: stop.set())
    received: Counter[str] = Counter()

    def null(message: Outbound) -> Receipt:
        received[message.envelope.destination or ""] += 1
        return Receipt.applied(message)

    sinks: dict[str, Sink] = {name: FunctionSink(null) for name in child.destinations} if child.null_sinks else {}
    bus = Bus(child.settings, sinks=sinks)
    try:
        await bus.start(BusParts(router=child.router, deliverers=bool(child.destinations),
                                 only_destinations=frozenset(child.destinations)))
        settle_heap()  # as `renkei run` does, once the process holds what it keeps (bus.heap)
        print(json.dumps({"ready": os.getpid()}), flush=True)
        started = _cpu()
        await stop.wait()
        contention = bus.broker.contention() if isinstance(bus.broker, EmbeddedBroker) else {}
    finally:
        await bus.stop()
        closed.cancel()
    return {"cpu_seconds_running": round(_cpu() - started, 3), "received": dict(received),
            "contention": contention}


async def _main() -> dict[str, object]:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    line = await stdin.readline()
    if not line:
        raise SystemExit(0)  # the parent went before saying what to run
    # the parent's own objects, over a pipe only the parent holds (not data from outside)
    child: Child = pickle.loads(base64.b64decode(line))  # noqa: S301
    _die_with_parent(child.parent)
    from bus.logs import configure_logging

    stream = child.log_file.open("a", encoding="utf-8", buffering=1) if child.log_file else sys.stderr
    configure_logging("json" if child.log_file else child.settings.logging.format, child.log_level, stream=stream)
    return await _serve(child, stdin)


def main() -> int:
    started = time.monotonic()
    report = asyncio.run(_main())
    report["cpu_seconds"] = round(_cpu(), 3)
    report["peak_rss_mb"] = _peak_rss_mb()
    report["gc_thresholds"] = list(gc.get_threshold())
    report["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps({"report": report}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
