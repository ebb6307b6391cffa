"""The summary reads each benchmark's result file into one row per figure of issue 10's table."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench import report, summary


def _write(folder: Path, name: str, result: dict[str, Any]) -> None:
    report.write(folder / f"{name}.json", result)


def _embedded(*runs: tuple[int, float, float]) -> dict[str, Any]:
    return {"target": {"changes_per_s": 3000},
            "runs": [{"changes": n, "changes_per_s": rate, "cpu_ms_per_change": cpu, "rss_mb": 90.0, "mode": "fed"}
                     for n, rate, cpu in runs]}


def test_each_figure_is_compared_with_its_target_and_a_missing_file_says_not_run(tmp_path: Path) -> None:
    _write(tmp_path, "demo", {"target": {"changes_per_s": 1000.0},
                              "runs": [{"changes": 1000, "changes_per_s": 1200.0, "cpu_ms_per_change": 1.5}]})
    _write(tmp_path, "embedded", _embedded((1000, 2500.0, 0.8), (4000, 2400.0, 1.1)))
    _write(tmp_path, "run_latency", {"runs": [
        {"rate_offered": 200, "seconds_offered": 15, "latency_ms": {"p99": 40.0}, "accepted_rate": 199.0,
         "target_p99_ms": 50.0, "passed": True},
        {"rate_offered": 1000, "seconds_offered": 5, "latency_ms": {"p99": 900.0}, "accepted_rate": 700.0,
         "target_p99_ms": 250.0, "passed": False}]})

    rows = {r["figure"]: r for r in summary.rows(tmp_path)}

    demo = rows["renkei demo (HTTP simulators), changes/s, N=1,000"]
    assert demo["met"] is True and demo["measured"].startswith("1,200.0") and demo["commit"]
    embedded = rows["embedded broker, null sinks, changes/s, N=4,000"]
    assert embedded["met"] is False and embedded["target"] == ">= 3,000"
    growth = rows["CPU per change growth, embedded, null sinks"]
    assert growth["met"] is False and growth["measured"].startswith("x1.38")  # 1.1 / 0.8: more than +20 %
    assert rows["CPU per change growth, RabbitMQ, null sinks"]["measured"] == "not run"
    assert rows["renkei run, 200/s offered for 15 s: p99 accepted -> delivered"]["met"] is True
    assert rows["renkei run, 1,000/s offered for 5 s: p99 accepted -> delivered"]["met"] is False
    faststream = rows["RabbitMQ router vs FastStream, same 5 confirmed publishes"]
    assert faststream["met"] is None and faststream["measured"] == "not run"
    [avro] = [r for name, r in rows.items() if name.startswith("Avro file")]
    if (report.ROOT / "bench" / "ingest.py").exists():
        assert avro["measured"] == "not run"
    else:
        assert avro["measured"].startswith("not yet available")


def test_flat_growth_and_a_faststream_ratio_above_two_are_met(tmp_path: Path) -> None:
    _write(tmp_path, "embedded-rabbitmq", _embedded((1000, 300.0, 3.0), (10000, 290.0, 3.3)))
    _write(tmp_path, "pipeline", {"renkei": {"messages_per_s": 900.0},
                                  "versus_faststream": {"ratio": 2.1, "cpu_ratio": 2.0, "target": 2.0,
                                                        "passed": True}})

    rows = {r["figure"]: r for r in summary.rows(tmp_path)}

    assert rows["CPU per change growth, RabbitMQ, null sinks"]["met"] is True  # 3.3 / 3.0 = 1.1
    assert rows["RabbitMQ router vs FastStream, same 5 confirmed publishes"]["met"] is True


def test_the_summary_command_prints_the_table_and_writes_it_beside_the_results(
    tmp_path: Path, capsys: Any
) -> None:
    _write(tmp_path, "embedded", _embedded((1000, 3100.0, 0.6)))

    assert summary.main(["--results", str(tmp_path)]) == 0

    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["figure", "measured", "target", "met?"]
    assert "3,100.0" in printed and "one size only" in printed
    written = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert written["benchmark"] == "summary" and len(written["rows"]) == printed.count("\n") - 2  # header, rule


def test_the_growth_table_has_a_row_per_size_and_broker_in_order_of_size(tmp_path: Path, capsys: Any) -> None:
    runs = _embedded((10000, 300.0, 3.1), (1000, 320.0, 3.0))
    for run in runs["runs"]:
        run.update(deliveries=5 * run["changes"], load_average={"start": [2.0, 2.0, 2.0]})
    _write(tmp_path, "embedded", runs)

    assert summary.main(["--results", str(tmp_path), "--growth"]) == 0

    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| embedded")]
    assert [row.split("|")[2].strip() for row in rows] == ["1,000", "10,000"]
    assert rows[0].split("|")[4].strip() == "3.000"


def test_a_result_names_the_commit_its_benchmark_started_from(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit is read once, as bench.report is imported: a run long enough to outlive a commit
    still names the checkout it measured."""
    started = report.commit()
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("git asked again"))
    assert report.commit() == started
