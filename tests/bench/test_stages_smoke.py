"""The per-stage benchmark times intake, router and deliverers one after another (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import stages


def _check(run: dict, changes: int) -> None:  # type: ignore[type-arg]
    assert run["rss_mb"] > 0 and run["changes"] == changes
    assert run["deliveries"] == sum(run["destinations"].values()) >= changes
    intake, router, deliver = run["stages"]
    assert [intake["stage"], router["stage"]] == ["intake", "router"]
    assert deliver["stage"] == f"deliver ({run['sink']})"
    assert intake["items"] == router["items"] == changes and deliver["items"] == run["deliveries"]
    for stage in run["stages"]:
        assert stage["per_s"] > 0 and stage["cpu_ms_per_item"] > 0 and stage["per_core_per_s"] > 0


def test_each_stage_of_the_embedded_bus_is_timed_alone_to_null_and_http_sinks(tmp_path: Path) -> None:
    out = tmp_path / "stages.json"
    result = stages.run(12, ["embedded"], ["null", "http"], out)

    assert json.loads(out.read_text(encoding="utf-8")) == result
    assert [(r["broker"], r["sink"]) for r in result["runs"]] == [("embedded", "null"), ("embedded", "http")]
    for run in result["runs"]:
        _check(run, 12)
        assert all(s["rabbitmq_cpu_seconds"] is None for s in run["stages"])
    assert result["runs"][0]["xml_bytes_per_delivery"] > 0 and result["runs"][1]["xml_bytes_per_delivery"] is None
    assert result["runs"][0]["deliveries"] == result["runs"][1]["deliveries"]  # the same workload


@pytest.mark.amqp
def test_on_rabbitmq_the_stages_run_in_a_vhost_of_their_own_and_the_node_cpu_is_read(
    amqp_url: str, tmp_path: Path
) -> None:
    result = stages.run(12, ["rabbitmq"], ["null"], tmp_path / "stages.json")

    [run] = result["runs"]
    _check(run, 12)
    assert run["broker"] == "rabbitmq"
    assert all(s["rabbitmq_cpu_seconds"] is not None and s["rabbitmq_cpu_seconds"] >= 0 for s in run["stages"])
