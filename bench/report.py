"""What every result file of the suite carries: when, on what machine, under what load, against
which target, and where it goes (`bench/results/<name>.json`)."""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["RESULTS", "ROOT", "commit", "load", "machine", "rss_mb", "write"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages now."""
    return [round(x, 2) for x in os.getloadavg()]


@functools.cache
def commit() -> str:
    """The checkout's commit (what a result measured), with `+dirty` when files differ from it:
    read once, when this module is imported, i.e. when the benchmark starts. Read when the file
    was written, a 20-minute run named a commit made while it ran (stop 29: ingest.json)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""
    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    # the suite's own outputs (earlier results, the capacity tables) do not make the code dirty
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results", ":!docs/scaling.md")
    return head + ("+dirty" if changed else "")


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "load_average": load()}


def rss_mb(pid: int | str = "self") -> float:
    """A process's resident set now (Linux /proc), in MB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


commit()  # the checkout as the benchmark starts


def write(out: Path, result: dict[str, Any]) -> dict[str, Any]:
    """`result` with the common fields (timestamp, commit, machine) added, written to `out`."""
    full = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit(),
            "machine": machine(), **result}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(full, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return full


def inline_writes_option(parser: Any, what: str = "the embedded broker's and the audit trail's") -> None:
    """`--inline-writes` / `--no-inline-writes` on an argparse parser: `[bus] inline_writes` for a
    benchmark that builds its settings in code (RENKEI_INLINE_WRITES does not reach them); left
    out, the bus's default (None: on with the embedded broker, off on RabbitMQ)."""
    parser.add_argument("--inline-writes", action=argparse.BooleanOptionalAction, default=None,
                        help=f"[bus] inline_writes: {what} transactions on the event loop when the file is free, "
                             "or always in a worker thread (default: the bus's, on with the embedded broker)")


def inline_writes_args(setting: bool | None) -> list[str]:
    """The arguments that pass `setting` on to a child benchmark (inline_writes_option)."""
    return [] if setting is None else ["--inline-writes" if setting else "--no-inline-writes"]
