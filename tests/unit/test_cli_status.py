"""`renkei status`: the table and JSON forms, the rates of --watch, the read-only view of an
embedded state directory while a bus holds messages in it (ready, in flight, delayed for a
retry), and the delivery store's parked residents, held changes and dead letters."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bus.brokers.base import Delivery, OutgoingMessage
from bus.brokers.embedded import EmbeddedBroker
from bus.cli.status import render_json, render_table, status
from bus.delivery.store import DeliveryStore
from bus.settings import Settings
from bus.state import StateStore
from bus.status import (
    NOT_REPORTED,
    STATUS_SCHEMA,
    DeadLetterSummary,
    DeliveryFigures,
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
        dead_letters=DeadLetterSummary(1, {"zei": 1}, {"D100": 1}, 4000.0),
        destinations=[
            DestinationStatus("kaigo", None, QueueFigures("renkei.dest.kaigo", 3, 0, 0, declared=True)),
            DestinationStatus("zei", "http", QueueFigures("renkei.dest.zei", 0, 1, 1), routed=5,
                              delivered=delivered, duplicate=1, retried=2, attempts=9, dead_lettered=2,
                              delivery=DeliveryFigures(retrying=1, held_residents=2, held_messages=3, dead=1,
                                                       oldest_parked_age=4000.04)),
        ],
        sources=[SourceStatus("http", accepted=accepted, duplicate=1, rejected=2)],
        notes=["in flight is unknown where consumers run outside this state_dir's bus processes: renkei.intake"],
    )


def test_a_sources_tokens_and_refusals_are_shown() -> None:
    """During a token rotation: how often each token was used, so the old one can go at 0."""
    report = dataclasses.replace(_report(), sources=[
        SourceStatus("jumin-a", accepted=7, forbidden=1, tokens={"sha256:bbbbbbbbbbbb": 2, "sha256:aaaaaaaaaaaa": 5})])
    lines = render_table(report, wide=True).splitlines()
    assert next(line for line in lines if line.startswith("SOURCE")).split()[-3:] == ["RATE/s", "TOKENS", "USED"]
    row = next(line for line in lines if line.startswith("jumin-a "))
    assert row.split() == ["jumin-a", "7", "0", "0", "1", "-", "sha256:aaaaaaaaaaaa", "5,", "sha256:bbbbbbbbbbbb", "2"]
    [source] = json.loads(render_json(report))["sources"]
    assert (source["forbidden"], list(source["tokens"])) == (1, ["sha256:aaaaaaaaaaaa", "sha256:bbbbbbbbbbbb"])


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
        "attempts": 9, "retried": 2, "retrying": 1, "held": 2, "held_messages": 3, "dead": 1,
        "dead_lettered_total": 2,
        "delayed": None, "oldest_age_seconds": None, "oldest_parked_age_seconds": 4000.0, "rate_per_second": None,
    }
    assert set(data["destinations"][0]) == set(zei)
    assert data["destinations"][0]["dead"] == 0 and data["destinations"][0]["oldest_parked_age_seconds"] == 0.0
    assert set(data["queues"]) == {"intake"}  # no renkei.dead queue: dead letters are in the delivery store
    assert data["dead_letters"] == {"total": 1, "by_destination": {"zei": 1}, "by_code": {"D100": 1},
                                    "oldest_age_seconds": 4000.0}
    assert data["sources"] == [{"name": "http", "accepted": 6, "duplicate": 1, "rejected": 2, "forbidden": 0,
                                "rate_per_second": None, "tokens": {}}]
    assert data["not_reported"] == NOT_REPORTED
    assert data["processes"] == []


def test_the_table_fits_100_columns_and_leaves_the_age_empty_where_no_one_is_parked() -> None:
    """Before, the destinations table was ~145 columns wide and a destination with nothing parked
    read "OLDEST PARKED 0s"; --wide still has every column."""
    lines = render_table(_report()).splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("DESTINATION"))):]
    table = table[:next(i for i, line in enumerate(table) if not line.strip())]
    assert max(map(len, table)) <= 100
    assert table[0].split() == ["DESTINATION", "SINK", "READY", "IN", "FLIGHT", "DELIVERED", "RETRYING", "HELD",
                                "DEAD", "RATE/s", "OLDEST", "PARKED"]
    kaigo = next(line for line in table if line.startswith("kaigo "))
    assert not kaigo.rstrip().endswith("0s")  # nothing parked: no age
    assert next(line for line in table if line.startswith("zei ")).split()[-1] == "1h"


def test_the_table_shows_a_row_per_destination_and_source_with_a_dash_for_unknown_figures() -> None:
    text = render_table(_report(), wide=True)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("DESTINATION"))
    assert header.split() == ["DESTINATION", "SINK", "READY", "IN", "FLIGHT", "CONSUMERS", "ROUTED", "DELIVERED",
                              "DUPLICATE", "ATTEMPTS", "RETRIED", "RETRYING", "HELD", "DEAD", "RATE/s", "OLDEST",
                              "PARKED"]
    zei = next(line for line in lines if line.startswith("zei "))
    assert zei.split() == ["zei", "http", "0", "1", "1", "5", "4", "1", "9", "2", "1", "2", "1", "-", "1h"]
    assert "dead letters: 1 unresolved (zei 1; codes D100 1), oldest 1h ago: renkei dead list" in lines
    assert not any(line.startswith("renkei.dead") for line in lines)
    kaigo = next(line for line in lines if line.startswith("kaigo "))
    assert kaigo.split()[:3] == ["kaigo", "(none)", "3"]
    intake = next(line for line in lines if line.startswith("renkei.intake"))
    assert intake.split() == ["renkei.intake", "2", "-", "1"]
    http = next(line for line in lines if line.startswith("http "))
    assert http.split() == ["http", "6", "1", "2", "0", "-", "-"]  # forbidden 0, no rate, no tokens
    assert "no bus process of this state_dir is running" in text
    assert "note: in flight is unknown" in text
    for key in ("delayed", "oldest message", "rate"):
        assert f"  {key}: " in text
    assert "  held: " not in text and "  retrying: " not in text  # reported now, from the delivery store


def test_figures_line_up_under_their_headers() -> None:
    lines = render_table(_report(), wide=True).splitlines()
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
        for queue in ("renkei.intake", "renkei.dest.zei"):
            await broker.declare(queue)
        await broker.publish_many([("renkei.dest.zei", OutgoingMessage(b"x", f"m{i}", f"k{i}")) for i in range(3)])
        await broker.publish("renkei.dest.zei", OutgoingMessage(b"x", "m9", "k9"), delay=600)  # a retry tier
        state.count("destination", "zei", "routed", 3)
        state.count("destination", "zei", "applied", 2)
        state.count("destination", "zei", "duplicate", 1)
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
    assert report.to_dict()["destinations"][1]["delayed"] == 1 and "delayed" not in report.to_dict()["not_reported"]
    assert (zei.routed, zei.delivered, zei.duplicate, zei.dead_lettered) == (3, 3, 1, 0)
    assert zei.delivery == DeliveryFigures()  # no delivery store yet: nothing parked, held or dead
    kaigo = next(d for d in report.destinations if d.name == "kaigo")
    assert kaigo.queue == QueueFigures("renkei.dest.kaigo", 0, 0, 0, declared=False, delayed=0)
    assert report.sources == [SourceStatus("http", accepted=3, duplicate=0, rejected=1)]
    assert report.intake.declared and report.broker == "embedded" and report.notes == []


def test_status_of_a_state_dir_no_bus_ran_in_says_what_it_could_not_see_and_exits_1(tmp_path: Path) -> None:
    """Not zeros and exit 0 (issue 16): no broker file, no state file, nothing created."""
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "nothing-here"\n')
    result = CliRunner().invoke(status, ["--config", str(config), "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert [d["name"] for d in data["destinations"]] == sorted(
        ["fukushi", "fukushi_shinsei", "jumin_shinsei", "kaigo", "kaigo_shinsei", "koki", "kokuho", "nenkin", "senkyo",
         "shugaku", "togo", "togo_oshirase", "zei"])
    assert all(d["ready"] is None for d in data["destinations"])
    assert data["complete"] is False and data["broker"]["reachable"] is False
    assert any("no bus has run" in u and "broker" in u for u in data["unseen"])
    assert any("has not run with this state_dir" in n for n in data["notes"])
    table = CliRunner().invoke(status, ["--config", str(config)])
    assert table.exit_code == 1 and "could not see (exit 1):" in table.output
    assert not (tmp_path / "nothing-here").exists()  # status writes nothing


def test_the_help_documents_the_exit_codes() -> None:
    text = CliRunner().invoke(status, ["--help"]).output
    assert "Exit codes:" in text and "0  everything was seen" in text and "2  a configuration" in text


def _a_bus_ran_in(state_dir: Path) -> None:
    """The files a bus leaves in its state directory: the state file and the broker file."""
    StateStore(state_dir / "state.sqlite").close()

    async def touch() -> None:
        broker = EmbeddedBroker(state_dir / "broker.sqlite")
        await broker.connect()
        await broker.declare("renkei.intake")
        await broker.close()

    asyncio.run(touch())


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


def _park_hold_and_kill(store: DeliveryStore) -> None:
    """zei: resident A retrying with two changes held behind it, resident B dead (D100) with
    one held, and an older dead letter of C already discarded; kokuho: D dead past its deadline."""
    headers = {"municipality": "131016"}
    store.park("zei", "a" * 32, "a-001", "retrying")
    assert store.hold("zei", "a" * 32, 2, "a-002", headers, b"<secret>A2</secret>")
    assert store.hold("zei", "a" * 32, 3, "a-003", headers, b"<secret>A3</secret>")
    for destination, subject, code in (("zei", "c" * 32, "D100"), ("zei", "b" * 32, "D100"),
                                       ("kokuho", "d" * 32, "D200")):
        store.add_dead(destination=destination, subject=subject, municipality="131016",
                       message_id=f"{subject[0]}-001", sequence=1, code=code, reason=f"refused {subject[0]}",
                       attempts=1, first_failed=time.time(), headers=headers, body=b"<secret>dead</secret>")
    assert store.hold("zei", "b" * 32, 2, "b-002", headers, b"<secret>B2</secret>")
    discarded = store.dead_list()[0]
    assert discarded.subject == "c" * 32
    assert store.resolve_dead(discarded.id, "discarded", "ops", "entered twice")
    assert store.unpark_if_drained("zei", "c" * 32)


@pytest.mark.parametrize("broker_url", [None, "amqp://guest:guest@127.0.0.1:1/"], ids=["embedded", "amqp-down"])
def test_status_reports_parked_residents_held_changes_and_dead_letters_from_the_delivery_store(
    tmp_path: Path, broker_url: str | None
) -> None:
    """Retrying, held and dead come from the delivery store on either broker (even one that is
    down): as many as DeliveryStore itself counts, discarded letters not among them, no subject."""
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n' + (f'broker_url = "{broker_url}"\n' if broker_url else ""))
    store = DeliveryStore(tmp_path / "var" / "delivery.sqlite")
    _a_bus_ran_in(tmp_path / "var")
    try:
        _park_hold_and_kill(store)
        assert store.held_counts() == {"zei": (2, 3)} and store.dead_counts() == {"zei": 1, "kokuho": 1}
        result = CliRunner().invoke(status, ["--config", str(config), "--json"])
        table = CliRunner().invoke(status, ["--config", str(config), "--wide"])
    finally:
        store.close()
    assert result.exit_code == table.exit_code == (0 if broker_url is None else 1), result.output
    data = json.loads(result.output)
    assert data["schema"] == "renkei.status/2"
    destinations = {d["name"]: d for d in data["destinations"]}
    zei, kokuho = destinations["zei"], destinations["kokuho"]
    assert (zei["retrying"], zei["held"], zei["held_messages"], zei["dead"]) == (1, 2, 3, 1)
    assert (kokuho["retrying"], kokuho["held"], kokuho["held_messages"], kokuho["dead"]) == (0, 0, 0, 1)
    assert destinations["kaigo"]["dead"] == 0 and destinations["kaigo"]["oldest_parked_age_seconds"] == 0.0
    assert 0 <= zei["oldest_parked_age_seconds"] < 60 and zei["oldest_age_seconds"] is None
    assert zei["dead_lettered_total"] == 0  # the counters are the bus's own, not written here
    assert data["dead_letters"]["total"] == 2
    assert data["dead_letters"]["by_destination"] == {"kokuho": 1, "zei": 1}
    assert data["dead_letters"]["by_code"] == {"D100": 1, "D200": 1}
    assert 0 <= data["dead_letters"]["oldest_age_seconds"] < 60
    assert "queues" in data and set(data["queues"]) == {"intake"}
    assert not {"retrying", "held", "dead"} & set(data["not_reported"])
    assert ("delayed" in data["not_reported"]) == (broker_url is not None)
    zei_row = next(line for line in table.output.splitlines() if line.startswith("zei "))
    assert zei_row.split()[10:13] == ["1", "2", "1"]  # RETRYING, HELD (residents), DEAD
    assert "dead letters: 2 unresolved (kokuho 1, zei 1; codes D100 1, D200 1)" in table.output
    for output in (result.output, table.output):  # counts only: no subject, reason or body
        assert "aaaa" not in output and "bbbb" not in output and "refused" not in output and "secret" not in output


def test_an_unreadable_delivery_store_leaves_its_figures_null_and_says_why(tmp_path: Path) -> None:
    """A damaged delivery.sqlite is not shown as zeros: null, explained, and noted."""
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n')
    (tmp_path / "var").mkdir()
    _a_bus_ran_in(tmp_path / "var")
    (tmp_path / "var" / "delivery.sqlite").write_bytes(b"not a database, just bytes " * 40)
    result = CliRunner().invoke(status, ["--config", str(config), "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["unseen"] == [f"the dead letters, parked and held changes in {tmp_path / 'var' / 'delivery.sqlite'}"]
    zei = next(d for d in data["destinations"] if d["name"] == "zei")
    assert (zei["retrying"], zei["held"], zei["held_messages"], zei["dead"]) == (None, None, None, None)
    assert data["dead_letters"]["total"] is None
    assert data["not_reported"]["dead"] == "the delivery store could not be read (see notes)"
    assert any("cannot read the delivery store" in n for n in data["notes"])
    table = CliRunner().invoke(status, ["--config", str(config)]).output
    assert "dead letters: - (the delivery store could not be read)" in table
    assert "  dead: the delivery store could not be read (see notes)" in table


def test_a_delivery_store_with_no_tables_yet_counts_zero(tmp_path: Path) -> None:
    """A file the bus has just created (no schema committed yet) is not an error."""
    (tmp_path / "var").mkdir()
    sqlite3.connect(tmp_path / "var" / "delivery.sqlite").close()
    settings = Settings.load(None, env={"RENKEI_STATE_DIR": str(tmp_path / "var")})
    report = asyncio.run(gather_status(settings, ["zei"]))
    assert report.dead_letters == DeadLetterSummary()
    assert report.destinations[0].delivery == DeliveryFigures()
    assert not any("delivery store" in n for n in report.notes)


def test_status_shows_the_dead_letters_of_every_state_directory_given(tmp_path: Path) -> None:
    """The router's volume and a deliverer's volume (compose): the dead letters live where the
    deliverer runs, and status shows the whole bus's, with the counters of both summed."""
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "router"\n')
    _a_bus_ran_in(tmp_path / "router")
    router_state = StateStore(tmp_path / "router" / "state.sqlite")
    router_state.count("destination", "zei", "routed", 4)
    router_state.close()
    (tmp_path / "deliver-tax").mkdir()
    deliverer_state = StateStore(tmp_path / "deliver-tax" / "state.sqlite")
    deliverer_state.count("destination", "zei", "applied", 3)
    deliverer_state.count("destination", "zei", "dead", 1)
    deliverer_state.close()
    store = DeliveryStore(tmp_path / "deliver-tax" / "delivery.sqlite")
    try:
        _park_hold_and_kill(store)
    finally:
        store.close()
    alone = json.loads(CliRunner().invoke(status, ["--config", str(config), "--json"]).output)
    assert alone["dead_letters"]["total"] == 0  # the router's volume alone holds none
    result = CliRunner().invoke(status, ["--config", str(config), "--json", "--state-dir",
                                         str(tmp_path / "deliver-tax")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["dead_letters"]["total"] == 2 and data["dead_letters"]["by_code"] == {"D100": 1, "D200": 1}
    zei = next(d for d in data["destinations"] if d["name"] == "zei")
    assert (zei["routed"], zei["delivered"], zei["dead_lettered_total"], zei["held"]) == (4, 3, 1, 2)
    assert data["state_dirs"] == [str(tmp_path / "router"), str(tmp_path / "deliver-tax")]
    missing = CliRunner().invoke(status, ["--config", str(config), "--state-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such directory" in missing.output


def test_an_unreadable_broker_file_is_reported_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n')
    (tmp_path / "var").mkdir()
    StateStore(tmp_path / "var" / "state.sqlite").close()
    (tmp_path / "var" / "broker.sqlite").write_bytes(b"garbage " * 200)
    result = CliRunner().invoke(status, ["--config", str(config), "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["broker"]["reachable"] is False
    assert data["queues"]["intake"]["ready"] is None
    assert any("broker file" in u for u in data["unseen"])


def test_a_typo_in_a_destinations_options_is_a_configuration_error_not_a_report(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n\n[destinations.zei]\ntransport = "http"\n'
                      'url = "http://127.0.0.1:9/m"\nconcurency = 4\n')
    result = CliRunner().invoke(status, ["--config", str(config)])
    assert result.exit_code == 2
    assert "[destinations.zei]" in result.output and "concurency" in result.output
