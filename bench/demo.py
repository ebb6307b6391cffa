"""The demo as a newcomer runs it: `renkei demo --changes N`, changes per second (issue 10, row 1).

    python -m bench.demo                          # 1,000 changes -> bench/results/demo.json
    python -m bench.demo --changes 1000 4000 16000

Each size runs `renkei demo --changes N --out <temporary directory>` in its own process (the
embedded broker, the HTTP simulators, the invalid and duplicate messages the demo mixes in), and
takes the demo's own clocks (its last line: "(S s; F s from the first change sent until the bus
was drained)": changes/s is N / F, as this benchmark has always said it measured; until December
2026 it divided by S, the whole run: the feed made, the simulators and the bus started, the
deliveries checked), the wall clock of the whole command (start-up included), and the command's
CPU time (user + system, from the kernel's accounting of finished children: the simulators'
process included; the demo reports that one's own, so the bus's is told apart). The run counts
only when the demo says OK (exit 0: every expected delivery happened, nothing unexpected); its
table's total gives the deliveries. Only counts are kept: the demo's received messages are
deleted with the directory.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report

__all__ = ["TARGET", "main", "run_one"]

TARGET = 1000.0  # changes/s (issue 10)
DEFAULT_OUT = report.RESULTS / "demo.json"
_SECONDS = re.compile(r"^OK: .*\((\d+(?:\.\d+)?) s; (\d+(?:\.\d+)?) s from the first change sent", re.MULTILINE)
_TOTAL = re.compile(r"^total\s+(\d+)\s+(\d+)\s*$", re.MULTILINE)
_SIMULATORS_CPU = re.compile(r"^simulators: in a process of their own, (\d+(?:\.\d+)?) s CPU$", re.MULTILINE)
_REQUESTS = re.compile(r"^delivery: .* (\d+) requests", re.MULTILINE)
_PROCESSES = re.compile(r"^bus: (\d+) processes.*?(?:; the others (\d+(?:\.\d+)?) s CPU)?$", re.MULTILINE)


def run_one(changes: int, *, within: float = 1800.0, options: tuple[str, ...] = ()) -> dict[str, Any]:
    """`renkei demo --changes changes [options]` once; its figures (RuntimeError when the demo failed).

    With the simulators apart (the demo's default) their process's CPU, as the demo reports it,
    is `simulators_cpu_seconds` and the rest of the command's is `bus_cpu_seconds`; in-process
    (`--simulators in-process`) the two are not told apart (None)."""
    with tempfile.TemporaryDirectory(prefix="renkei-bench-demo-") as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_start = report.load()
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "bus.cli", "demo", "--changes", str(changes), "--out", out,
                               *options],
                              capture_output=True, text=True, timeout=within, check=False, cwd=report.ROOT)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, total = _SECONDS.search(done.stdout), _TOTAL.search(done.stdout)
    if done.returncode != 0 or seconds is None or total is None:
        raise RuntimeError(f"renkei demo --changes {changes} failed (exit {done.returncode}): "
                           f"{(done.stdout + done.stderr)[-1500:]}")
    demo_seconds, flow_seconds = float(seconds.group(1)), float(seconds.group(2))
    expected, delivered = int(total.group(1)), int(total.group(2))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    simulators = _SIMULATORS_CPU.search(done.stdout)
    sims_cpu = float(simulators.group(1)) if simulators else None
    requests = _REQUESTS.search(done.stdout)
    return {
        "changes": changes, "deliveries": delivered, "expected_deliveries": expected, "ok": True,
        "seconds": flow_seconds, "demo_seconds": demo_seconds, "wall_seconds": round(wall, 3),
        "changes_per_s": round(changes / max(flow_seconds, 0.01), 1),
        "changes_per_s_whole_demo": round(changes / demo_seconds, 1),
        "cpu_seconds": round(cpu, 3), "cpu_ms_per_change": round(1000 * cpu / changes, 3),
        "system_cpu_seconds": round(after.ru_stime - before.ru_stime, 3),
        "simulators_cpu_seconds": sims_cpu,
        "bus_cpu_seconds": round(cpu - sims_cpu, 3) if sims_cpu is not None else None,
        "bus_cpu_ms_per_change": round(1000 * (cpu - sims_cpu) / changes, 3) if sims_cpu is not None else None,
        "requests": int(requests.group(1)) if requests else None,
        "bus_processes": int(processes.group(1)) if (processes := _PROCESSES.search(done.stdout)) else 1,
        # the bus's other processes (bus.demo_procs), start-up included: part of bus_cpu_seconds
        "bus_other_processes_cpu_seconds": float(processes.group(2)) if processes and processes.group(2) else None,
        "options": list(options),
        "load_average": {"start": load_start, "end": report.load()},
    }


def run(sizes: list[int], out: Path, options: tuple[str, ...] = ("--simulators", "apart")) -> dict[str, Any]:
    runs = []
    for n in sizes:
        runs.append(run_one(n, options=options))
        r = runs[-1]
        split = f" (bus {r['bus_cpu_ms_per_change']:.3f})" if r["bus_cpu_ms_per_change"] is not None else ""
        print(f"demo {n:>7} changes ({r['deliveries']} deliveries, {r['requests']} requests): "
              f"{r['changes_per_s']:8.1f} changes/s  {r['cpu_ms_per_change']:7.3f} ms CPU/change{split}  "
              f"load {r['load_average']['start'][0]:.2f}", flush=True)
    return report.write(out, {
        "benchmark": "demo", "command": "renkei demo --changes N (embedded broker, HTTP simulators)",
        "measured": "the demo's own clock: first submit until the bus is drained; CPU of the whole command "
                    "(the simulators' process included), and the simulators' own when they ran apart",
        "target": {"changes_per_s": TARGET}, "runs": runs,
        "passed": all(r["changes_per_s"] >= TARGET for r in runs),
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, nargs="+", default=[1000], help="one or more sizes")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--simulators", choices=["apart", "in-process"], default="apart",
                        help="where the demo runs its simulators (its --simulators)")
    parser.add_argument("--linger-ms", type=int, default=None, help="the demo's --linger-ms (default: the demo's)")
    parser.add_argument("--processes", type=int, default=None,
                        help="the demo's --processes: the bus's processes (default: the demo's)")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.changes):
        parser.error("--changes: each size must be at least 1")
    linger = ("--linger-ms", str(args.linger_ms)) if args.linger_ms is not None else ()
    processes = ("--processes", str(args.processes)) if args.processes is not None else ()
    result = run(args.changes, args.out, ("--simulators", args.simulators, *linger, *processes))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
