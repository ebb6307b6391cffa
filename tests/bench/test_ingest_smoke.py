"""The bulk-file benchmark runs end to end on a tiny file, routed and delivered and intake only,
and writes its result file (no timing is asserted: only the shape, and that the work was done)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_file_is_ingested_routed_and_delivered_and_the_result_file_has_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "results" / "ingest.json"
    done = subprocess.run([sys.executable, "-m", "bench.ingest", "--records", "60", "--batch", "25", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["benchmark"] == "ingest" and result["target"] == {"records": 1_000_000, "seconds": 300,
                                                                    "rss_mb": 300}
    assert len(result["machine"]["load_average"]) == 3 and result["timestamp"] and result["workload"]
    assert re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", result["commit"])  # what it measured (bench/README.md)
    [run] = result["runs"]
    assert run["records"] == 60 and run["mode"] == "end_to_end" and run["delivered_all"] is True
    # the bus as 3 processes by default (the file taken in here, the router and the deliverers apart)
    assert run["processes"] == 3 and run["router_apart"] is True and len(run["cpu_seconds_other_processes"]) == 2
    assert all(mb > 0 for mb in run["peak_rss_mb_other_processes"])  # each child says its peak (VmHWM)
    assert run["peak_rss_mb_all_processes"] > run["peak_rss_mb"] + sum(run["peak_rss_mb_other_processes"]) - 1
    assert run["deliveries"] == sum(run["destinations"].values()) >= 60
    assert run["records_per_s"] > 0 and run["cpu_ms_per_record"] > 0 and run["peak_rss_mb"] > 0
    assert 25 <= run["peak_held"] <= 25 * 3 and run["batch"] == 25
    assert len(run["load_average"]["start"]) == len(run["load_average"]["end"]) == 3
    digit_run = re.compile(r"(?<![0-9a-f])\d{8,15}(?![0-9a-f])")  # no 宛名番号 / 個人番号 / 住民票コード
    for text in (done.stdout, out.read_text(encoding="utf-8")):
        assert not digit_run.search(text)


def test_inline_writes_reach_the_bus_of_the_benchmark(tmp_path: Path) -> None:
    """--[no-]inline-writes: the bench builds its settings in code, so RENKEI_INLINE_WRITES never reached
    them; left out, the bus's default on the embedded broker (on)."""
    for flag, inline in ((["--no-inline-writes"], False), ([], True), (["--inline-writes"], True)):
        out = tmp_path / f"ingest-{inline}-{len(flag)}.json"
        done = subprocess.run([sys.executable, "-m", "bench.ingest", "--records", "40", "--batch", "20",
                               "--processes", "1", *flag, "--out", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        [run] = json.loads(out.read_text(encoding="utf-8"))["runs"]
        assert run["inline_writes"] is inline and run["delivered_all"] is True
        assert (run["inline_transactions"] > 0) is inline  # this process's broker wrote on its loop, or never


def test_intake_only_leaves_the_changes_in_the_intake_queue_and_writes_its_own_result(tmp_path: Path) -> None:
    out = tmp_path / "ingest-intake.json"
    done = subprocess.run([sys.executable, "-m", "bench.ingest", "--records", "40", "--intake-only", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    [run] = result["runs"]
    assert result["benchmark"] == "ingest-intake" and run["mode"] == "intake_only" and run["records"] == 40
    assert run["delivered_all"] is False and run["intake_records_per_s"] > 0
