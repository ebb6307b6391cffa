"""The HTTP delivery benchmark runs end to end on a tiny workload (no timing is asserted): every
change applied once in each mode, and batches take fewer requests than single messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_each_batch_size_delivers_every_change_and_batches_take_fewer_requests(tmp_path: Path) -> None:
    out = tmp_path / "http_delivery.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.http_delivery", "--changes", "30", "--batch-size", "1", "--batch-size", "10",
         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    single, batched = json.loads(out.read_text(encoding="utf-8"))["runs"]
    assert (single["batch_size"], batched["batch_size"]) == (1, 10)
    assert single["requests"] == 30 and single["batches"] == 0
    assert 3 <= batched["requests"] == batched["batches"] < 30
    assert all(r["deliveries_per_s"] > 0 and r["bus_cpu_ms_per_delivery"] > 0 for r in (single, batched))
    assert done.stdout.count("deliveries/s") == 2
