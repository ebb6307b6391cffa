"""The suite's benchmarks run end to end on tiny sizes (shape and work done, never a timing)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from bench import demo, run_latency
from bench.pipeline import FANOUT, Options
from bench.pipeline import run as run_pipeline

DIGIT_RUN = re.compile(r"(?<![0-9a-f])\d{8,15}(?![0-9a-f])")  # no 宛名番号 / 個人番号 / 住民票コード


def test_the_demo_benchmark_runs_renkei_demo_and_records_its_rate_and_cpu(tmp_path: Path) -> None:
    out = tmp_path / "demo.json"
    result = demo.run([8], out)

    assert json.loads(out.read_text(encoding="utf-8")) == result
    assert result["benchmark"] == "demo" and result["target"] == {"changes_per_s": demo.TARGET}
    assert len(result["machine"]["load_average"]) == 3 and result["commit"]
    [r] = result["runs"]
    assert r["changes"] == 8 and r["ok"] is True
    assert r["deliveries"] == r["expected_deliveries"] >= 8  # the demo itself checked every one
    assert r["changes_per_s"] > 0 and r["cpu_seconds"] > 0 and r["wall_seconds"] >= r["demo_seconds"] >= r["seconds"]
    assert result["passed"] == (r["changes_per_s"] >= demo.TARGET)
    # the simulators ran apart (the demo's default): their CPU and the bus's, told apart
    assert 0 < r["simulators_cpu_seconds"] < r["cpu_seconds"]
    assert r["bus_cpu_seconds"] == round(r["cpu_seconds"] - r["simulators_cpu_seconds"], 3)
    assert 0 < r["requests"] and r["options"] == ["--simulators", "apart"]
    # the bus in 3 processes (the demo's default): the other two's CPU is part of the bus's
    assert r["bus_processes"] == 3 and 0 < r["bus_other_processes_cpu_seconds"] < r["bus_cpu_seconds"]
    assert not DIGIT_RUN.search(out.read_text(encoding="utf-8"))


def test_the_offered_load_reaches_every_simulator_and_latencies_come_from_the_audit_trail(tmp_path: Path) -> None:
    out = tmp_path / "run_latency.json"
    result = run_latency.run([run_latency.Load(20, 1.0)], out)

    assert json.loads(out.read_text(encoding="utf-8")) == result
    [r] = result["runs"]
    assert r["changes"] == 20 and r["broker"] == "embedded"
    assert r["answers"] == {"accepted": 20} and r["not_accepted"] == 0  # every answer kept, by kind
    assert r["deliveries"] >= 20  # every change reaches at least one system; each delivery has its latency
    assert r["deliveries"] + r["dead_lettered"] == r["expected_deliveries"]  # what the route table gives
    lat = r["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert lat["p99_per_change"] >= lat["p50"]
    hops = r["hops_ms"]  # where it went: the intake's commit, the router, a deliverer
    assert list(hops) == ["received_to_accepted", "accepted_to_routed", "routed_to_delivered"]
    assert all(0 <= h["p50"] <= h["p99"] for h in hops.values()) and hops["routed_to_delivered"]["p50"] > 0
    assert hops["accepted_to_routed"]["p99"] <= lat["max"] and hops["routed_to_delivered"]["p99"] <= lat["max"]
    assert r["bus_cpu_seconds"] > 0 and r["bus_rss_mb"] > 0
    assert r["target_p99_ms"] is None and r["passed"] is False  # 20/s has no target in the issue
    assert set(result["target"]) == {"200", "1000"}
    # as examples/renkei.toml wires the simulators: batches of up to 100, as many in flight
    assert r["delivery"] == {"batch_size": 100, "concurrency": 100, "batch_linger_ms": 0}
    assert not DIGIT_RUN.search(out.read_text(encoding="utf-8"))  # counts and durations only


def test_with_batches_every_delivery_still_arrives_and_the_simulators_cpu_is_their_own(tmp_path: Path) -> None:
    out = tmp_path / "run_latency.json"
    result = run_latency.run([run_latency.Load(20, 1.0)], out, batch=10, linger_ms=2)

    [r] = result["runs"]
    assert r["answers"] == {"accepted": 20}
    assert r["deliveries"] + r["dead_lettered"] == r["expected_deliveries"] >= 20
    assert r["delivery"] == {"batch_size": 10, "concurrency": 10, "batch_linger_ms": 2}
    assert r["simulators"] == "the bus's child process (--with-simulators)"
    assert r["bus_cpu_seconds"] > 0 and r["simulators_cpu_seconds"] > 0  # they validated every message


def test_one_request_per_change_when_asked(tmp_path: Path) -> None:
    """--batch 1: every destination as a system without batches (one request per change, 8 in flight)."""
    config, _ = run_latency.write_config(tmp_path, batch=1)
    destinations = tomllib.loads(config.read_text(encoding="utf-8"))["destinations"]
    assert destinations and all(d.get("batch_size") == 1 and d.get("concurrency", 8) == 8
                                for d in destinations.values())
    config, _ = run_latency.write_config(tmp_path)  # the example's own keys
    destinations = tomllib.loads(config.read_text(encoding="utf-8"))["destinations"]
    # every system a route addresses; the bus sends nothing to chukan and portal (togo's simulator does)
    assert {n for n, d in destinations.items() if d.get("batch_size") != 100} == {"chukan", "portal"}


def test_with_the_roles_apart_the_bus_is_two_processes_and_every_delivery_still_arrives(tmp_path: Path) -> None:
    out = tmp_path / "run_latency.json"
    result = run_latency.run([run_latency.Load(20, 1.0)], out, batch=10, roles_apart=True,
                             bus_linger_ms=5)

    [r] = result["runs"]
    assert r["processes"] == ["renkei run --role router", "renkei run --role deliver"]
    assert r["answers"] == {"accepted": 20} and r["bus_batch_linger_ms"] == 5
    assert r["deliveries"] + r["dead_lettered"] == r["expected_deliveries"] >= 20  # the deliverers' process
    assert r["bus_cpu_seconds"] > 0 and r["bus_rss_mb"] > 0
    assert result["command"].startswith("renkei run --role router + renkei run --role deliver")
    assert not DIGIT_RUN.search(out.read_text(encoding="utf-8"))


def test_a_target_counts_as_met_only_when_the_intake_kept_up_with_the_load() -> None:
    load = run_latency.Load(1000, 15.0)
    assert run_latency.met(250.0, 232.9, load, 15_000, 15.2)  # answered 987/s
    assert not run_latency.met(250.0, 232.9, load, 15_000, 41.2)  # answered 364/s: the queue was outside the p99
    assert not run_latency.met(250.0, 251.0, load, 15_000, 15.0)
    assert not run_latency.met(250.0, 100.0, load, 14_999, 15.0)  # one change not accepted
    assert not run_latency.met(None, 1.0, run_latency.Load(20, 1.0), 20, 1.0)  # no target at 20/s


def test_a_load_is_read_as_rate_times_seconds_and_nonsense_is_refused() -> None:
    assert run_latency.Load.parse("200x15") == run_latency.Load(200, 15.0)
    assert run_latency.Load.parse("1000x0.5").changes == 500
    for bad in ("200", "0x5", "200x0", "fast"):
        with pytest.raises(Exception, match=r"RATExSECONDS|rate of at least 1"):
            run_latency.Load.parse(bad)


@pytest.mark.amqp
async def test_the_faststream_side_does_the_same_five_confirmed_publishes_as_the_others(
    amqp_url: str, tmp_path: Path
) -> None:
    n = 30
    result = await run_pipeline(Options(amqp_url, messages=n, rounds=1, out=tmp_path / "p.json", faststream=True),
                                echo=False)

    versus = result["versus_faststream"]
    assert versus["target"] == 2.0 and versus["ratio"] > 0 and versus["passed"] == (versus["ratio"] >= 2.0)
    assert result["faststream"]["messages_per_s"] > 0
    [round_] = result["rounds"]
    assert set(round_) == {"reference", "renkei", "faststream"}
    for side in round_.values():
        assert side["processed"] == n and side["outputs"] == n * FANOUT and side["input_left"] == 0
