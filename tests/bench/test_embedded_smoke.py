"""The embedded-path benchmark runs end to end on a tiny workload (no timing is asserted)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_change_is_delivered_at_each_size_and_the_result_file_has_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "results" / "embedded.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.embedded", "--changes", "20", "40", "--repeat", "2", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]

    result = json.loads(out.read_text(encoding="utf-8"))
    for run in result["runs"]:  # each size twice, the run with the higher CPU per change of the two kept
        assert len(run["repeats"]) == 2
        assert run["cpu_ms_per_change"] == max(r["cpu_ms_per_change"] for r in run["repeats"])
    assert result["benchmark"] == "embedded"
    assert result["target"]["changes_per_s"] == 3000
    for key in ("timestamp", "workload", "machine"):
        assert result[key]
    assert re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", result["commit"])  # what it measured (bench/README.md)
    assert len(result["machine"]["load_average"]) == 3
    assert [r["changes"] for r in result["runs"]] == [20, 40]
    for run in result["runs"]:
        assert run["delivered_all"] is True
        assert run["deliveries"] == sum(run["destinations"].values()) >= run["changes"]
        assert run["changes_per_s"] > 0 and run["cpu_ms_per_change"] > 0 and run["rss_mb"] > 0
        assert len(run["load_average"]["start"]) == len(run["load_average"]["end"]) == 3
        # the bus in 3 processes by default (intake, router, deliverers), each one's lock figures kept
        assert run["processes"] == 3 and run["router_apart"] is True
        assert len(run["contention"]) == 3 and all(c["transactions"] > 0 for c in run["contention"])
        assert all(cpu > 0 for cpu in run["cpu_seconds_other_processes"])
    assert result["runs"][1]["deliveries"] > result["runs"][0]["deliveries"]  # each size its own workload

    printed = done.stdout
    assert printed.count("changes/s") == 2 and printed.count("median of 2") == 2
    digit_run = re.compile(r"(?<![0-9a-f])\d{8,15}(?![0-9a-f])")  # no 宛名番号 / 個人番号 / 住民票コード
    for text in (printed, out.read_text(encoding="utf-8")):
        assert not digit_run.search(text)


def test_the_whole_bus_runs_in_one_process_when_told(tmp_path: Path) -> None:
    out = tmp_path / "embedded.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.embedded", "--changes", "20", "--processes", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = json.loads(out.read_text(encoding="utf-8"))["runs"]
    assert run["delivered_all"] is True and run["processes"] == 1 and run["router_apart"] is False
    assert run["cpu_seconds_other_processes"] == [] and len(run["contention"]) == 1
