"""bench.audit_trail runs end to end on a tiny trail: both layouts append every record, every
lookup finds all of its change's records (the run checks it), and the result file has the figures
(no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.audit_trail import main


def test_both_layouts_append_and_find_every_record_and_the_result_file_has_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "audit_trail.json"
    assert main(["--records", "2400", "--segment", "800", "--lookups", "5", "--out", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert [run["layout"] for run in result["runs"]] == ["runs", "indexes"]
    for run in result["runs"]:
        assert [s["records"] for s in run["segments"]] == [800, 1600, 2400]
        assert all(s["cpu_us_per_record"] > 0 for s in run["segments"])
        assert run["by_message_ms"]["p50"] <= run["by_message_ms"]["max"]
    assert len(result["indexes_over_runs_cpu"]) == 3
    assert result["runs"][1]["runs_built"] == 0  # the old layout builds none
