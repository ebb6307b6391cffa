"""The embedded-path benchmark runs the same bus on RabbitMQ with --broker-url (growth rows, item 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.rabbit import vhost

pytestmark = pytest.mark.amqp
ROOT = Path(__file__).resolve().parents[2]


def test_every_change_reaches_its_null_sinks_through_rabbitmq_at_each_size(amqp_url: str, tmp_path: Path) -> None:
    out = tmp_path / "embedded-rabbitmq.json"
    with vhost("renkei-test-bench") as url:
        done = subprocess.run(
            [sys.executable, "-m", "bench.embedded", "--changes", "20", "30", "--broker-url", url, "--out", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]

    result = json.loads(out.read_text(encoding="utf-8"))
    assert [r["changes"] for r in result["runs"]] == [20, 30]
    for run in result["runs"]:
        assert run["broker"] == "rabbitmq" and run["delivered_all"] is True
        assert run["deliveries"] == sum(run["destinations"].values()) >= run["changes"]
        assert run["cpu_ms_per_change"] > 0 and run["rss_mb"] > 0
