"""Where the embedded path's time goes: a py-spy raw profile of `python -m bench.embedded`,
summed by owner (stage or store).

    py-spy record -r 200 --threads --format raw -o /tmp/embedded.txt -- \\
        .venv/bin/python -m bench.embedded --changes 2000 --out /tmp/embedded.json
    python -m bench.profile_summary /tmp/embedded.txt --cpu-ms 3.5

Each sample is a stack, outermost frame first (with `--threads` the first "frame" is the thread).
A sample is *idle* when its innermost frame waits (a worker thread waiting for a job, the event
loop in `select`); samples of setup and teardown (building the workload, `Bus.start`/`stop`,
imports) are outside the benchmark's clock and set aside. Every other sample goes to the
innermost frame that belongs to an owner below, so a store's SQLite call counts for the store
and not for the stage that called it; the embedded broker's worker thread is its own owner.
`--cpu-ms` (the benchmark's CPU ms per change) turns the shares into milliseconds per change.
The shares are of busy samples, wall time in each thread: a thread waiting in `fdatasync` is
busy but uses little CPU, so the broker store's share overstates its CPU somewhat.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

__all__ = ["OWNERS", "summarise"]

#: (owner, file pattern): the innermost frame of one of these files decides the owner
OWNERS = [
    ("audit recorder", r"bus/audit/"),
    ("delivery store (resident line)", r"bus/delivery/|bus/stages/order\.py"),
    ("state store (seen, routed, counters)", r"bus/state\.py"),
    ("broker client (embedded.py)", r"bus/brokers/embedded\.py"),
    ("project", r"bus/stages/project\.py|bus/routing/projection"),
    ("route", r"bus/stages/route\.py"),
    ("deliver", r"bus/stages/deliver\.py"),
    ("intake", r"bus/stages/intake\.py|bus/stages/gate\.py"),
    ("hooks (counters, logs)", r"bus/stages/hooks\.py"),
    ("dispatch", r"bus/stages/dispatch\.py"),
    ("null sinks (the benchmark's)", r"null \(bench/embedded"),
    ("HTTP sink (httpx)", r"adapters/transports/http"),
    ("simulators (renkei demo's receivers)", r"adapters/simulators/|uvicorn/|starlette/"),
]
_IDLE = re.compile(r"^_worker \(concurrent/futures/thread\.py:81\)|^EpollSelector\.select|^Condition\.wait"
                   r"|^ThreadedChildWatcher\._do_waitpid")  # asyncio waiting for a child (the simulators)
_SETUP = re.compile(r"sample_records|to_xml|_find_and_load|Catalog\.load|RouteTable\.load|Bus\.__post_init__"
                    r"|Bus\.stop|Bus\.start|<listcomp> \(bench/embedded|demo_feed|_expected \(bus/demo|_tally")
_BROKER_THREAD = "renkei-embedded"
_DETAILED = ("audit recorder", "state store (seen, routed, counters)", "deliver", "project", "route", "intake")


def summarise(lines: list[str]) -> tuple[Counter[str], Counter[str], int]:
    """(samples by owner, samples by owner and innermost bus frame, busy samples in the clock)."""
    owners: Counter[str] = Counter()
    detail: Counter[str] = Counter()
    busy = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        if _IDLE.search(frames[-1]):
            owners["(idle)"] += n
            continue
        in_broker = _BROKER_THREAD in frames[0]
        if _SETUP.search(stack) and "dispatch.py" not in stack and not in_broker:
            owners["(setup and teardown, outside the clock)"] += n
            continue
        busy += n
        if in_broker:
            owners["broker store (its SQLite thread)"] += n
            detail["broker store: " + _broker_job(stack, frames)] += n
            continue
        owner = next((name for frame in reversed(frames) for name, pattern in OWNERS if re.search(pattern, frame)),
                     "event loop, threads, other")
        owners[owner] += n
        if owner in _DETAILED:
            inner = [f for f in frames if "(bus/" in f]
            detail[f"{owner}: {(inner[-1] if inner else frames[-1])[:100]}"] += n
    return owners, detail, busy


def _broker_job(stack: str, frames: list[str]) -> str:
    if "Worker._transaction" in stack:
        return "BEGIN/COMMIT (the fsync of publishes)"
    jobs = [m.group(1) for f in frames if (m := re.match(r"([\w.<>]+) \(bus/brokers/embedded_store\.py", f))]
    jobs = [j for j in jobs if j not in ("Worker._outcomes",)]
    return jobs[-1] if jobs else "other"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_summary", description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="py-spy record --threads --format raw output")
    parser.add_argument("--cpu-ms", type=float, default=None, help="the run's CPU ms per change")
    parser.add_argument("--detail", type=int, default=30, help="lines of detail")
    args = parser.parse_args(argv)
    owners, detail, busy = summarise(args.profile.read_text(encoding="utf-8").splitlines())
    print(f"busy samples inside the clock: {busy}")
    for owner, n in owners.most_common():
        if owner.startswith("("):
            print(f"{n:7d}  {owner}")
            continue
        ms = f"  {n / busy * args.cpu_ms:5.2f} ms/change" if args.cpu_ms else ""
        print(f"{n:7d}  {n / busy:6.1%}{ms}  {owner}")
    print("detail (innermost bus frame):")
    for what, n in detail.most_common(args.detail):
        print(f"{n:7d}  {n / busy:6.1%}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
