"""支援措置 without a 異動 (jumin.shien; 住民記録 standard 1.1.16, 3.1, 3.2, 7.2.3): the kind, who
receives it and what each gets, its place among the resident's changes, the synthetic feed, and
the destinations on a kind version without `support_measure` named rather than left silent."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from lxml import etree
from pipeline_support import intake_of
from structlog.testing import capture_logs

from adapters.simulators import create_app
from bus.app import Bus, BusParts
from bus.catalog import Catalog
from bus.catalog.spec import iter_leaves
from bus.cli import main
from bus.config_check import check_pins
from bus.demo import SUPPORT_RATE, DemoOptions, demo_feed
from bus.errors import ValidationFailed
from bus.paths import routes_dir, schemas_dir
from bus.routing.router import RouteTable
from bus.routing.support import support_gaps
from bus.settings import Settings
from bus.synthetic import Registry
from bus.synthetic.shien import SupportMeasures
from bus.validation.validator import validate

CATALOG = Catalog.load()
TABLE = RouteTable.load(routes_dir(), CATALOG)
SAMPLE = schemas_dir() / "jumin.shien" / "1" / "samples" / "valid" / "settei.xml"
#: the systems that take changes of residents (routes taking jumin.idou to a resident kind)
RESIDENT_SYSTEMS = {"zei", "kokuho", "kaigo", "koki", "nenkin", "fukushi", "senkyo", "shugaku", "togo"}


def _record() -> dict[str, Any]:
    return validate(SAMPLE.read_bytes(), content_type="application/xml", catalog=CATALOG).record


def _field_names(kind: str) -> set[str]:
    return {path.rsplit("/", 1)[-1] for path, _ in iter_leaves(CATALOG.get(kind).fields)}


# --- the kind ---------------------------------------------------------------------------------


def test_a_support_measure_carries_no_name_address_or_personal_number() -> None:
    """Who (宛名番号, 世帯番号) and the measure; never a name, an address, a birth date, a 個人番号,
    or the 申出者's and 加害者's items that 1.1.16 keeps in the registry."""
    for kind in ("jumin.shien", "shien.jumin"):
        names = _field_names(kind)
        assert {"address_number", "household_number", "history_number", "event_number", "action",
                "provisional", "start_date", "end_date", "etsuran", "juminhyo_utsushi", "fuhyo_utsushi"} <= names
        assert not names & {"name", "family_name", "given_name", "address", "town", "banchi", "birth_date",
                            "personal_number", "resident_code"}, kind
    assert "integrated_address_number" in _field_names("jumin.shien")
    assert "integrated_address_number" not in _field_names("shien.jumin")  # no 業務 projection carries it


def test_a_temporary_release_cannot_be_sent() -> None:
    """3.1: a 一時解除 is not passed on (a system must not take it for a release): no code for it."""
    assert CATALOG.codelists.symbols("ShienAction") == ("SETTEI", "ENCHO", "KAIJO")
    raw = SAMPLE.read_bytes().replace(b"<action>SETTEI", b"<action>ICHIJI_KAIJO")
    with pytest.raises(ValidationFailed) as failed:
        validate(raw, content_type="application/xml", catalog=CATALOG)
    assert [i.code for i in failed.value.issues] == ["R300"]


@pytest.mark.parametrize(("edit", "code", "path"), [
    ((b"<end_date>2026-06-01", b"<end_date>2025-06-01"), "R410", "measure/end_date"),
    ((b"<action>SETTEI</action>", b"<action>KAIJO</action>"), None, None),  # released with its day: valid
    ((b"<end_date>2026-06-01</end_date>", b""), None, None),  # set without an end: valid
])
def test_a_support_measures_period_runs_forward(edit: tuple[bytes, bytes], code: str | None,
                                                path: str | None) -> None:
    raw = SAMPLE.read_bytes().replace(*edit)
    if code is None:
        validate(raw, content_type="application/xml", catalog=CATALOG)
        return
    with pytest.raises(ValidationFailed) as failed:
        validate(raw, content_type="application/xml", catalog=CATALOG)
    assert [(i.code, i.path.endswith(path or "")) for i in failed.value.issues] == [(code, True)]


def test_a_release_names_the_day_it_ended() -> None:
    raw = SAMPLE.read_bytes().replace(b"<action>SETTEI", b"<action>KAIJO").replace(
        b"<end_date>2026-06-01</end_date>", b"")
    with pytest.raises(ValidationFailed) as failed:
        validate(raw, content_type="application/xml", catalog=CATALOG)
    assert [i.code for i in failed.value.issues] == ["R430"]


# --- routes and projections -------------------------------------------------------------------


def test_a_support_measure_reaches_every_system_that_takes_resident_changes_and_no_other() -> None:
    """3.2 (j420) and 7.2.3 (j1190): every system that receives 住民記録 — whatever the person's age
    or insurance, so one that comes to hold them later already knows — the 団体内統合宛名 function
    among them (it takes 住民記録データ, 7.1.2.3); not the 中間サーバー, the portal or the 申請 interfaces."""
    resident_routes = {r.destination for r in TABLE.routes if r.takes == "jumin.idou"} - {"togo_oshirase"}
    assert resident_routes == RESIDENT_SYSTEMS
    matches = TABLE.route(_record(), "131016", kind="jumin.shien")
    assert sorted(m.route.destination for m in matches) == sorted(RESIDENT_SYSTEMS)
    verdicts = {v.route.destination for v in TABLE.explain(_record(), "131016", kind="jumin.shien") if v.matched}
    assert verdicts == RESIDENT_SYSTEMS


def test_each_system_gets_only_what_it_may_see_and_a_valid_message() -> None:
    record = _record()
    assert record["integrated_address_number"] == "900000012345"
    for match in TABLE.route(record, "131016", kind="jumin.shien"):
        xml = match.target.to_xml(match.record)
        match.target.xml_schema.assertValid(etree.fromstring(xml))
        assert b"personal_number" not in xml
        if match.route.destination == "togo":  # a system taking 住民記録データ (7.2.3): the number it keys by
            assert match.target.kind == "jumin.shien" and b"900000012345" in xml
        else:
            assert match.target.kind == "shien.jumin" and b"900000012345" not in xml
            assert match.record["measure"] == record["measure"]
            assert match.record["address_number"] == record["address_number"]


def test_a_destination_pinned_to_v2_still_gets_the_support_measure_as_its_one_version(tmp_path: Path) -> None:
    """The pin is the version of its resident changes; jumin.shien has one version and goes as it is
    (on the old code, pinning 2 made `check_pins` refuse the configuration)."""
    path = tmp_path / "renkei.toml"
    path.write_text('[bus]\nstate_dir = "state"\n\n[destinations.zei]\ntransport = "null"\nschema_version = 2\n',
                    encoding="utf-8")
    settings = Settings.load(path, env={})
    check_pins(settings, TABLE.routes, CATALOG.versions)
    [match] = [m for m in TABLE.route(_record(), "131016", kind="jumin.shien") if m.route.destination == "zei"]
    assert TABLE.pinned(match, 2, _record(), "131016") is match
    gaps = support_gaps(TABLE.routes, CATALOG, {"zei": 2})
    assert [g.destination for g in gaps] == sorted(RESIDENT_SYSTEMS - {"zei"})


# --- its place among the resident's changes ---------------------------------------------------


async def test_a_support_measure_is_ordered_with_the_residents_changes_and_is_no_duplicate_of_one(
        tmp_path: Path) -> None:
    """Same subject as the resident's changes (same shard, same per-resident order, same trail),
    sequence the 履歴番号 it follows, an id of its own (on the old code intake refused the kind)."""
    intake, broker, body = intake_of(CATALOG, tmp_path)
    change = validate(body, content_type="application/xml", catalog=CATALOG).record
    measure = _record()
    measure.update(municipality_code=change["municipality_code"], address_number=change["address_number"],
                   history_number=change["history_number"], household_number=change["household_number"])
    shien = CATALOG.get("jumin.shien").to_xml(measure)
    answers = [await intake.submit(raw, content_type="application/xml", source="jumin") for raw in (body, shien)]
    assert [a.status for a in answers] == ["accepted", "accepted"]
    (_, first), (_, second) = broker.published
    assert second.key == first.key  # the subject: the resident's
    assert second.message_id != first.message_id
    assert int(second.headers["sequence"]) == int(first.headers["sequence"]) == int(change["history_number"])
    assert second.headers["kind"] == "jumin.shien"
    again = await intake.submit(shien, content_type="application/xml", source="jumin")
    assert again.status == "duplicate"
    measure["event_number"] = 2  # the next event of the same resident: a message of its own
    nxt = await intake.submit(CATALOG.get("jumin.shien").to_xml(measure), content_type="application/xml",
                              source="jumin")
    assert nxt.status == "accepted" and nxt.message_id not in (first.message_id, second.message_id)


# --- receivers ---------------------------------------------------------------------------------


async def test_a_business_systems_simulator_takes_the_support_measure_beside_its_kind() -> None:
    app = create_app("zei", catalog=CATALOG)
    [match] = [m for m in TABLE.route(_record(), "131016", kind="jumin.shien") if m.route.destination == "zei"]
    headers = {"content-type": "application/xml", "x-renkei-municipality": "131016"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zei") as client:
        ok = await client.post("/messages", content=match.target.to_xml(match.record),
                               headers={**headers, "idempotency-key": "k1", "x-renkei-kind": "shien.jumin"})
        # the registry's kind, with the 団体内統合宛名番号: not for a 業務 system
        refused = await client.post("/messages", content=SAMPLE.read_bytes(),
                                    headers={**headers, "idempotency-key": "k2", "x-renkei-kind": "jumin.shien"})
    assert ok.json()["status"] == "applied"
    assert app.state.simulator.messages["k1"].kind == "shien.jumin"
    assert refused.status_code == 422 and refused.json()["issues"][0]["code"] == "R220"


# --- destinations on a kind without support_measure -------------------------------------------


def test_routes_check_names_each_destination_on_a_kind_without_support_measure(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["routes", "check"], catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("支援措置 (support_measure): 9 destination")))
    named = lines[start + 1:start + 10]
    assert [line.split(":")[0].strip() for line in named] == sorted(RESIDENT_SYSTEMS)
    assert "  zei: takes resident changes as zei.jumin v1 (route zei-all-changes), which has no support_measure; " \
           "it learns of 支援措置 only from jumin.shien (route shien-zei)" in lines
    config = tmp_path / "renkei.toml"
    config.write_text('[destinations.zei]\ntransport = "null"\nschema_version = 2\n', encoding="utf-8")
    pinned = CliRunner().invoke(main, ["routes", "check", "--config", str(config), "--json"], catch_exceptions=False)
    gaps = json.loads(pinned.stdout)["support_measure_gaps"]
    assert sorted(g["destination"] for g in gaps) == sorted(RESIDENT_SYSTEMS - {"zei"})


def test_a_destination_no_route_sends_support_measures_to_is_called_out(tmp_path: Path) -> None:
    (tmp_path / "zei.yaml").write_text((routes_dir() / "zei.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    result = CliRunner().invoke(main, ["routes", "check", "--dir", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0
    assert "  zei: takes resident changes as zei.jumin v1 (route zei-all-changes), which has no support_measure; " \
           "NO route sends it jumin.shien: it will not learn of 支援措置 (抑止)" in result.stdout.splitlines()


async def test_the_bus_warns_at_start_of_destinations_without_support_measure(tmp_path: Path) -> None:
    path = tmp_path / "renkei.toml"
    path.write_text('[bus]\nstate_dir = "state"\n\n[destinations.kaigo]\ntransport = "http"\n'
                    'url = "http://127.0.0.1:9/messages"\nschema_version = 2\n', encoding="utf-8")
    bus = Bus(Settings.load(path, env={}), catalog=CATALOG)
    with capture_logs() as logs:
        await bus.start(BusParts(router=False, deliverers=False))
        await bus.stop()
    [warning] = [e for e in logs if e["event"].startswith("destinations take resident changes without 支援措置")]
    assert warning["log_level"] == "warning"
    assert "zei zei.jumin v1" in warning["destinations"]
    assert not any(d.startswith("kaigo ") for d in warning["destinations"])  # pinned to v2: carries it
    assert warning["without_jumin_shien"] == []


# --- synthetic data and the demo feed ---------------------------------------------------------


def test_synthetic_support_measures_follow_their_residents_latest_change() -> None:
    measures = SupportMeasures(random.Random(3), rate=0.2)
    latest: dict[str, int] = {}
    made: list[dict[str, Any]] = []
    for record in Registry(seed=3).events(400):
        latest[record["address_number"]] = int(record["history_number"])
        for measure in measures.after(record):
            assert measure["history_number"] == latest[measure["address_number"]]
            validate(CATALOG.get("jumin.shien").to_xml(measure), content_type="application/xml", catalog=CATALOG)
            made.append(measure)
    assert {m["measure"]["action"] for m in made} == {"SETTEI", "ENCHO", "KAIJO"}
    by_resident: dict[str, list[int]] = {}
    for m in made:
        by_resident.setdefault(m["address_number"], []).append(m["event_number"])
    assert all(events == list(range(1, len(events) + 1)) for events in by_resident.values())


def test_the_demo_feed_sends_support_measures_in_their_residents_partition() -> None:
    options = DemoOptions(changes=600, support_rate=SUPPORT_RATE)
    feed = list(demo_feed(CATALOG, options))
    shien = [item for item in feed if item.kind == "jumin.shien"]
    assert {item.record["measure"]["action"] for item in shien if item.record} == {"SETTEI", "ENCHO", "KAIJO"}
    last_change: dict[str, tuple[int, int]] = {}  # 宛名番号 → (its position, 履歴番号)
    for position, item in enumerate(feed):
        if item.record is None:
            continue
        number = item.record["address_number"]
        assert item.partition == zlib.crc32(number.encode()) % options.feeders
        if item.kind == "jumin.idou":
            last_change[number] = (position, int(item.record["history_number"]))
        else:
            assert b"urn:renkei:schema:jumin.shien:1" in item.body and item.expect == "accepted"
            assert last_change[number][1] == item.record["history_number"]
    assert not [item for item in demo_feed(CATALOG, DemoOptions(changes=200)) if item.kind == "jumin.shien"]
