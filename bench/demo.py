"""The demo as a newcomer runs it: `renkei demo --changes N`, changes per second (issue 10, row 1).

    python -m bench.demo                          # 1,000 changes -> bench/results/demo.json
    python -m bench.demo --changes 1000 4000 16000

Each size runs `renkei demo --changes N --out <temporary directory>` in its own process (the
embedded broker, the HTTP simulators, the invalid and duplicate messages the demo mixes in), and
takes the demo's own clock (the "(S s)" of its last line: first submit to drained), the wall
clock of the whole command (start-up included), and the command's CPU time (user + system, from
the kernel's accounting of finished children). The run counts only when the demo says OK (exit
0: every expected delivery happened, nothing unexpected); its table's total gives the
deliveries. Only counts are kept: the demo's received messages are deleted with the directory.
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
_SECONDS = re.compile(r"^OK: .*\((\d+(?:\.\d+)?) s\)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^total\s+(\d+)\s+(\d+)\s*$", re.MULTILINE)


def run_one(changes: int, *, within: float = 1800.0) -> dict[str, Any]:
    """`renkei demo --changes changes` once; its figures (RuntimeError when the demo failed)."""
    with tempfile.TemporaryDirectory(prefix="renkei-bench-demo-") as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_start = report.load()
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "bus.cli", "demo", "--changes", str(changes), "--out", out],
                              capture_output=True, text=True, timeout=within, check=False, cwd=report.ROOT)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, total = _SECONDS.search(done.stdout), _TOTAL.search(done.stdout)
    if done.returncode != 0 or seconds is None or total is None:
        raise RuntimeError(f"renkei demo --changes {changes} failed (exit {done.returncode}): "
                           f"{(done.stdout + done.stderr)[-1500:]}")
    demo_seconds = float(seconds.group(1))
    expected, delivered = int(total.group(1)), int(total.group(2))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "changes": changes, "deliveries": delivered, "expected_deliveries": expected, "ok": True,
        "seconds": demo_seconds, "wall_seconds": round(wall, 3),
        "changes_per_s": round(changes / demo_seconds, 1),
        "cpu_seconds": round(cpu, 3), "cpu_ms_per_change": round(1000 * cpu / changes, 3),
        "system_cpu_seconds": round(after.ru_stime - before.ru_stime, 3),
        "load_average": {"start": load_start, "end": report.load()},
    }


def run(sizes: list[int], out: Path) -> dict[str, Any]:
    runs = []
    for n in sizes:
        runs.append(run_one(n))
        r = runs[-1]
        print(f"demo {n:>7} changes ({r['deliveries']} deliveries): {r['changes_per_s']:8.1f} changes/s  "
              f"{r['cpu_ms_per_change']:7.3f} ms CPU/change  load {r['load_average']['start'][0]:.2f}", flush=True)
    return report.write(out, {
        "benchmark": "demo", "command": "renkei demo --changes N (embedded broker, HTTP simulators)",
        "measured": "the demo's own clock: first submit until the bus is drained; CPU of the whole command",
        "target": {"changes_per_s": TARGET}, "runs": runs,
        "passed": all(r["changes_per_s"] >= TARGET for r in runs),
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, nargs="+", default=[1000], help="one or more sizes")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.changes):
        parser.error("--changes: each size must be at least 1")
    result = run(args.changes, args.out)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
