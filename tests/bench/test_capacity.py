"""The capacity model: docs/scaling.md holds exactly what bench/capacity.py computes, and the
calculation follows its assumptions."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bench import capacity

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = capacity.BEGIN, capacity.END


def test_the_tables_in_docs_scaling_md_are_what_bench_capacity_prints_from_the_committed_results() -> None:
    doc = (ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
    assert doc.count(BEGIN) == 1 and doc.count(END) == 1, "docs/scaling.md lost its capacity markers"
    block = doc.split(BEGIN, 1)[1].split(END, 1)[0]

    printed = capacity.render(capacity.measured(ROOT / "bench" / "results" / "stages.json"))

    assert block.strip() == printed.strip(), "docs/scaling.md drifted: paste `python -m bench.capacity` there"


def _stages(intake_ms: float, router_ms: float, deliver_ms: float, node_ms: float = 0.5) -> dict:  # type: ignore[type-arg]
    def stage(name: str, ms: float, items: int) -> dict:  # type: ignore[type-arg]
        return {"stage": name, "items": items, "cpu_ms_per_item": ms, "rabbitmq_cpu_seconds": node_ms * items / 1000}
    return {"runs": [
        {"broker": "rabbitmq", "sink": sink, "deliveries_per_change": 5.0, "rss_mb": 100.0,
         "stages": [stage("intake", intake_ms, 1000), stage("router", router_ms, 1000),
                    stage(f"deliver ({sink})", deliver_ms, 5000)]}
        for sink in ("null", "http")]}


def test_processes_scale_with_the_peak_rate_over_what_one_process_does_at_the_chosen_utilisation(
    tmp_path: Path
) -> None:
    path = tmp_path / "stages.json"
    path.write_text(json.dumps(_stages(intake_ms=1.0, router_ms=2.0, deliver_ms=4.0)), encoding="utf-8")
    [m] = capacity.measured(path).values()

    n = capacity.need(100.0, m)  # 100 changes/s = 500 deliveries/s

    assert n["deliveries_per_s"] == 500.0
    assert n["intake"] == 1  # 100 / (1000 * 0.5)
    assert n["router"] == 1  # 100 / (500 * 0.5)
    assert n["deliver"] == 4  # 500 / (250 * 0.5)
    assert n["rabbitmq_cores"] == pytest.approx((100 * 1.0 + 500 * 0.5) / 1000 / 0.5)
    ceilings = capacity.first_bottleneck(m)
    assert ceilings[0] == ("one deliverer process (HTTP sinks)", 50.0)  # 250 deliveries/s / 5 per change
    assert [c for _, c in ceilings] == sorted(c for _, c in ceilings)


def test_peaks_follow_the_assumptions_and_a_larger_place_needs_proportionally_more() -> None:
    a = copy.deepcopy(capacity.ASSUMPTIONS)
    p = capacity.peaks(1_000_000, a)
    assert p["year"] == pytest.approx(1_000_000 * a["changes_per_resident_year"])
    assert p["year-end batch"] == pytest.approx(1_000_000 * a["batch_share"] / (a["batch_window_hours"] * 3600))
    assert capacity.peaks(10_000_000, a)["daily peak"] == pytest.approx(10 * p["daily peak"])
    a["nightly_batch_hours"] = 1000.0  # no nightly batch: the online peak hour decides
    online = p["peak_day"] / a["open_hours"] * a["peak_hour_factor"] / 3600
    assert capacity.peaks(1_000_000, a)["daily peak"] == pytest.approx(online)


def test_a_result_without_the_broker_asked_for_is_refused_with_what_to_run() -> None:
    with pytest.raises(ValueError, match=r"no embedded run: run `python -m bench.stages`"):
        capacity.Measured({"runs": []}, "embedded")


def test_the_doc_update_replaces_only_what_is_between_the_markers() -> None:
    text = f"intro\n{BEGIN}old tables\n{END}\nafter\n"
    assert capacity.update_doc(text, "new\n") == f"intro\n{BEGIN}new\n{END}\nafter\n"
    with pytest.raises(ValueError, match="markers"):
        capacity.update_doc("no markers here", "new\n")
