"""`renkei status`: the table and JSON forms, the rates of --watch, and the read-only view of an
embedded state directory while a bus holds messages in it (ready, in flight, delayed for a retry)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bus.brokers.base import Delivery, OutgoingMessage
from bus.brokers.embedded import EmbeddedBroker
from bus.cli.status import render_json, render_table, status
from bus.settings import Settings
from bus.state import StateStore
from bus.status import (
    NOT_REPORTED,
    STATUS_SCHEMA,
    DestinationStatus,
    QueueFigures,
    SourceStatus,
    StatusReport,
    display_url,
    gather_status,
    with_rates,
)


def _report(at: float = 1_700_000_000.0, delivered: int = 4, accepted: int = 6) -> StatusReport:
    return StatusReport(
        at=at,
        broker="amqp",
        where="amqp://guest:***@127.0.0.1:5673/t",
        intake=QueueFigures("renkei.intake", 2, None, 1),
        dead_letters=QueueFigures("renkei.dead", 1, 0, 0),
        destinations=[
            DestinationStatus("kaigo", None, QueueFigures("renkei.dest.kaigo", 3, 0, 0, declared=True)),
            DestinationStatus("zei", "http", QueueFigures("renkei.dest.zei", 0, 1, 1), routed=5,
                              delivered=delivered, duplicate=1, retried=2, dead=1),
        ],
        sources=[SourceStatus("http", accepted=accepted, duplicate=1, rejected=2)],
        notes=["in flight is unknown where consumers run outside this state_dir's bus processes: renkei.intake"],
    )


def test_the_json_form_has_every_key_always_with_null_for_what_is_not_known() -> None:
    data = json.loads(render_json(_report()))
    assert data["schema"] == STATUS_SCHEMA
    assert data["at"] == "2023-11-14T22:13:20Z"
    assert data["broker"] == {"name": "amqp", "where": "amqp://guest:***@127.0.0.1:5673/t", "reachable": True}
    assert data["queues"]["intake"] == {"queue": "renkei.intake", "declared": True, "ready": 2,
                                        "in_flight": None, "consumers": 1, "delayed": None}
    zei = data["destinations"][1]
    assert zei == {
        "name": "zei", "queue": "renkei.dest.zei", "sink": "http", "declared": True,
        "ready": 0, "in_flight": 1, "consumers": 1, "routed": 5, "delivered": 4, "duplicate": 1,
        "retried": 2, "dead": 1, "retrying": None, "held": None, "oldest_age_seconds": None,
        "rate_per_second": None,
    }
    assert set(data["destinations"][0]) == set(zei)
    assert data["sources"] == [{"name": "http", "accepted": 6, "duplicate": 1, "rejected": 2,
                                "rate_per_second": None}]
    assert data["not_reported"] == NOT_REPORTED
    assert data["processes"] == []


def test_the_table_shows_a_row_per_destination_and_source_with_a_dash_for_unknown_figures() -> None:
    text = render_table(_report())
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("DESTINATION"))
    assert header.split() == ["DESTINATION", "SINK", "READY", "IN", "FLIGHT", "CONSUMERS", "ROUTED", "DELIVERED",
                              "DUPLICATE", "RETRIED", "DEAD", "RATE/s", "RETRYING", "HELD", "OLDEST"]
    zei = next(line for line in lines if line.startswith("zei "))
    assert zei.split() == ["zei", "http", "0", "1", "1", "5", "4", "1", "2", "1", "-", "-", "-", "-"]
    kaigo = next(line for line in lines if line.startswith("kaigo "))
    assert kaigo.split()[:3] == ["kaigo", "(none)", "3"]
    intake = next(line for line in lines if line.startswith("renkei.intake"))
    assert intake.split() == ["renkei.intake", "2", "-", "1"]
    http = next(line for line in lines if line.startswith("http "))
    assert http.split() == ["http", "6", "1", "2", "-"]
    assert "no bus process of this state_dir is running" in text
    assert "note: in flight is unknown" in text
    for key in ("retrying", "held", "oldest", "rate"):
        assert f"  {key}: " in text


def test_figures_line_up_under_their_headers() -> None:
    lines = render_table(_report()).splitlines()
    header = next(line for line in lines if line.startswith("DESTINATION"))
    zei = next(line for line in lines if line.startswith("zei "))
    assert zei.index("5") + 1 == header.index("ROUTED") + len("ROUTED")  # right-aligned figures


def test_watch_rates_are_the_delivered_and_accepted_deltas_per_second() -> None:
    before = _report(at=100.0, delivered=4, accepted=6)
    after = with_rates(_report(at=102.0, delivered=10, accepted=16), before)
    zei = next(d for d in after.destinations if d.name == "zei")
    assert zei.rate == pytest.approx(3.0)
    assert after.sources[0].rate == pytest.approx(5.0)
    data = after.to_dict()
    assert "rate_per_second" not in data["not_reported"]
    assert data["destinations"][1]["rate_per_second"] == 3.0
    assert "RATE/s" in render_table(after) and " 3.0 " in render_table(after)
    assert with_rates(before, None) is before


def test_a_broker_url_is_shown_without_its_password() -> None:
    assert display_url("amqp://renkei:s3cret@mq.example.lg.jp:5671/%2F") == "amqp://renkei:***@mq.example.lg.jp:5671/%2F"
    assert display_url("amqp://127.0.0.1/") == "amqp://127.0.0.1/"


async def test_an_embedded_state_dir_is_read_while_a_bus_holds_a_message_in_flight(tmp_path: Path) -> None:
    settings = Settings.load(None, env={"RENKEI_STATE_DIR": str(tmp_path / "var")})
    state_dir = settings.bus.state_dir
    broker = EmbeddedBroker(state_dir / "broker.sqlite")
    state = StateStore(state_dir / "state.sqlite")
    await broker.connect()
    try:
        for queue in ("renkei.intake", "renkei.dead", "renkei.dest.zei"):
            await broker.declare(queue)
        await broker.publish_many([("renkei.dest.zei", OutgoingMessage(b"x", f"m{i}", f"k{i}")) for i in range(3)])
        await broker.publish("renkei.dest.zei", OutgoingMessage(b"x", "m9", "k9"), delay=600)  # a retry tier
        state.count("destination", "zei", "routed", 3)
        state.count("destination", "zei", "applied", 2)
        state.count("destination", "zei", "duplicate", 1)
        state.count("destination", "zei", "dead", 1)
        state.count("source", "http", "accepted", 3)
        state.count("source", "http", "rejected", 1)
        started, release = asyncio.Event(), asyncio.Event()

        async def hold(delivery: Delivery) -> None:
            started.set()
            await release.wait()

        consumer = await broker.consume("renkei.dest.zei", hold, concurrency=1, prefetch=1)
        await asyncio.wait_for(started.wait(), 10)
        report = await gather_status(settings, ["zei", "kaigo"])
        release.set()
        await consumer.cancel()
    finally:
        await broker.close()
        state.close()
    zei = next(d for d in report.destinations if d.name == "zei")
    assert (zei.queue.ready, zei.queue.in_flight, zei.queue.consumers, zei.queue.delayed) == (2, 1, 1, 1)
    assert report.to_dict()["destinations"][1]["retrying"] == 1 and "retrying" not in report.to_dict()["not_reported"]
    assert (zei.routed, zei.delivered, zei.duplicate, zei.dead) == (3, 3, 1, 1)
    kaigo = next(d for d in report.destinations if d.name == "kaigo")
    assert kaigo.queue == QueueFigures("renkei.dest.kaigo", 0, 0, 0, declared=False, delayed=0)
    assert report.sources == [SourceStatus("http", accepted=3, duplicate=0, rejected=1)]
    assert report.intake.declared and report.broker == "embedded" and report.notes == []


def test_status_of_a_state_dir_nothing_ran_in_says_so(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "nothing-here"\n')
    result = CliRunner().invoke(status, ["--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["name"] for d in data["destinations"]] == sorted(
        ["chukan", "fukushi", "kaigo", "koki", "kokuho", "nenkin", "portal", "zei"])
    assert all(d["ready"] == 0 and not d["declared"] for d in data["destinations"])
    assert any("has not run with this state_dir" in n for n in data["notes"])
    assert not (tmp_path / "nothing-here").exists()  # status writes nothing


def test_status_reports_an_unreachable_broker_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nbroker_url = "amqp://guest:guest@127.0.0.1:1/"\nstate_dir = "var"\n')
    result = CliRunner().invoke(status, ["--config", str(config), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["broker"]["reachable"] is False
    assert data["destinations"][0]["ready"] is None
    assert any("unreachable" in n for n in data["notes"])
    assert "guest:guest" not in result.output


def test_dataclasses_stay_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _report().broker = "x"  # type: ignore[misc]


def test_watch_prints_a_json_line_per_refresh_with_rates_from_the_second_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n')
    StateStore(tmp_path / "var" / "state.sqlite").close()
    naps: list[float] = []

    def nap(seconds: float) -> None:  # the refresh interval; the third one is the operator's Ctrl-C
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", nap)
    result = CliRunner().invoke(status, ["--config", str(config), "--json", "--watch", "0.5"])
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert first["destinations"][0]["rate_per_second"] is None and "rate_per_second" in first["not_reported"]
    assert second["destinations"][0]["rate_per_second"] == 0.0 and "rate_per_second" not in second["not_reported"]
    assert all(0 <= n <= 0.5 for n in naps)
