"""bench.wake runs end to end on a tiny workload: both modes deliver every message from another
process and the result file has the figures (no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.wake import main


def test_both_modes_deliver_every_message_and_the_result_file_has_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "wake.json"
    main(["--messages", "20", "--interval-ms", "5", "--out", str(out)])
    result = json.loads(out.read_text(encoding="utf-8"))
    assert [run["doorbell"] for run in result["runs"]] == [False, True]
    for run in result["runs"]:
        assert run["messages"] == 20
        latency = run["latency_ms"]
        assert 0 <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert result["poll_over_doorbell_p50"] > 0
    assert result["workload"] == {"messages": 20, "interval_ms": 5.0}
