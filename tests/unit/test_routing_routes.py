"""The shipped routes: who receives which change, and what each receives (data minimisation)."""

from __future__ import annotations

import copy
import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from bus.catalog import Catalog, KindSchema
from bus.catalog.spec import Field
from bus.paths import routes_dir, schemas_dir
from bus.routing import RouteTable
from bus.routing.projection import Projector
from bus.validation.safe_xml import parse_xml

MUNICIPALITY = "131016"
SAMPLES = sorted((schemas_dir() / "jumin.idou/1/samples/valid").glob("*.xml"))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def table(catalog: Catalog) -> RouteTable:
    return RouteTable.load(routes_dir(), catalog)


def sample(catalog: Catalog, name: str) -> dict[str, Any]:
    raw = (schemas_dir() / f"jumin.idou/1/samples/valid/{name}.xml").read_bytes()
    return catalog.get("jumin.idou").from_xml(parse_xml(raw))


def person(
    catalog: Catalog,
    *,
    reason: str = "TENKYO",
    born: date = date(1985, 6, 15),
    on: date = date(2025, 4, 1),
    status: str = "RESIDENT",
    **insurance: Any,
) -> dict[str, Any]:
    """A resident change built on the 転入 sample: no flags set unless given."""
    record = copy.deepcopy(sample(catalog, "tennyu"))
    record["change"].update(reason=reason, effective_date=on, processed_date=on)
    record["birth_date"] = born
    record["resident_status"] = status
    flags = {"kokuho": False, "kokuho_household": False, "kaigo": False, "koki": False, "jido_teate": False,
             "welfare": False, "nenkin_category": "NONE"}
    record["insurance"] = {**flags, **insurance}
    return record


def destinations(table: RouteTable, record: dict[str, Any]) -> set[str]:
    return {m.route.destination for m in table.route(record, MUNICIPALITY)}


def routes_hit(table: RouteTable, record: dict[str, Any]) -> set[str]:
    return {m.route.name for m in table.route(record, MUNICIPALITY)}


def test_every_change_reaches_the_tax_system(table: RouteTable, catalog: Catalog) -> None:
    for reason in catalog.codelists.symbols("ChangeReason"):
        assert "zei" in destinations(table, person(catalog, reason=reason)), reason


@pytest.mark.parametrize(
    ("on", "kaigo"),
    [
        (date(2025, 6, 13), False),  # 39: two days before the 40th birthday
        (date(2025, 6, 14), True),  # the day before the birthday: 40 is reached
        (date(2025, 6, 15), True),
    ],
)
def test_kaigo_takes_persons_aged_40_from_the_day_before_the_birthday(
    table: RouteTable, catalog: Catalog, on: date, kaigo: bool
) -> None:
    assert ("kaigo" in destinations(table, person(catalog, on=on))) is kaigo


@pytest.mark.parametrize(
    ("born", "koki"),
    [
        (date(1960, 4, 3), False),  # 64 on 2025-04-01 (65 is reached on 2025-04-02)
        (date(1960, 4, 2), True),  # 65 reached on 2025-04-01, the day before the birthday
        (date(1950, 1, 1), True),
    ],
)
def test_koki_takes_persons_aged_65_or_over(table: RouteTable, catalog: Catalog, born: date,
                                            koki: bool) -> None:
    got = destinations(table, person(catalog, born=born))
    assert ("koki" in got) is koki
    assert "kaigo" in got


@pytest.mark.parametrize(
    ("born", "nenkin"),
    [
        (date(2005, 4, 3), False),  # 19 on 2025-04-01
        (date(2005, 4, 2), True),  # 20 reached on 2025-04-01
        (date(1960, 4, 3), True),  # 64
        (date(1960, 4, 2), False),  # 65
    ],
)
def test_nenkin_takes_persons_aged_20_to_64(table: RouteTable, catalog: Catalog, born: date,
                                            nenkin: bool) -> None:
    assert ("nenkin" in destinations(table, person(catalog, born=born))) is nenkin


@pytest.mark.parametrize(
    ("born", "flags", "fukushi"),
    [
        (date(2007, 4, 3), {}, True),  # 17
        (date(2007, 4, 2), {}, False),  # 18 reached
        (date(1985, 1, 1), {"jido_teate": True}, True),  # a parent in a 児童手当 household
        (date(1985, 1, 1), {"welfare": True}, True),
        (date(1985, 1, 1), {}, False),
    ],
)
def test_fukushi_takes_children_and_receiving_households(
    table: RouteTable, catalog: Catalog, born: date, flags: dict[str, bool], fukushi: bool
) -> None:
    assert ("fukushi" in destinations(table, person(catalog, born=born, **flags))) is fukushi


@pytest.mark.parametrize(
    ("reason", "flags", "kokuho"),
    [
        ("TENKYO", {}, False),
        ("TENKYO", {"kokuho": True}, True),
        ("TENKYO", {"kokuho_household": True}, True),
        ("TENNYU", {}, True),
        ("KOKUGAI_TENNYU", {}, True),
        ("SHUSSEI", {}, True),
        ("TENSHUTSU", {}, False),
        ("TENSHUTSU", {"kokuho": True}, True),
    ],
)
def test_kokuho_takes_its_households_and_every_move_in_and_birth(
    table: RouteTable, catalog: Catalog, reason: str, flags: dict[str, bool], kokuho: bool
) -> None:
    assert ("kokuho" in destinations(table, person(catalog, reason=reason, **flags))) is kokuho


@pytest.mark.parametrize(
    ("reason", "chukan"),
    [
        ("TENKYO", True), ("SHIMEI_HENKO", True), ("SHIBOU", True), ("TENSHUTSU", True),
        ("TENNYU", True), ("GOKI_SHUSEI", True),
        ("SETAI_BUNRI", False), ("SETAINUSHI_HENKO", False), ("KOJIN_BANGO_HENKO", False),
    ],
)
def test_chukan_takes_changes_that_alter_a_fukuhon_item(table: RouteTable, catalog: Catalog, reason: str,
                                                       chukan: bool) -> None:
    assert ("chukan" in destinations(table, person(catalog, reason=reason))) is chukan


@pytest.mark.parametrize(
    ("reason", "born", "status", "expected"),
    [
        ("TENNYU", date(2015, 1, 1), "RESIDENT", {"portal-jido-teate-annai"}),
        ("KOKUGAI_TENNYU", date(2015, 1, 1), "RESIDENT", {"portal-jido-teate-annai"}),
        ("TENNYU", date(1985, 1, 1), "RESIDENT", set()),
        ("TENKYO", date(2015, 1, 1), "RESIDENT", set()),
        ("SHUSSEI", date(2025, 4, 1), "RESIDENT", {"portal-shussei-tetsuzuki"}),
    ],
)
def test_portal_notices_for_configured_events(table: RouteTable, catalog: Catalog, reason: str, born: date,
                                              status: str, expected: set[str]) -> None:
    hit = routes_hit(table, person(catalog, reason=reason, born=born, status=status))
    assert {n for n in hit if n.startswith("portal-")} == expected


def test_personal_number_is_carried_only_by_routes_with_a_legal_basis(table: RouteTable,
                                                                      catalog: Catalog) -> None:
    record = sample(catalog, "tennyu")
    number = record["personal_number"]
    assert number
    context = table.context(record, MUNICIPALITY)
    for route in table.routes:
        target = catalog.get(route.projection.kind)
        projected = Projector(route, target)(record, context, "m-1")
        xml = target.to_xml(projected).decode()
        declares = any(f.name == "personal_number" for f in target.fields)
        if route.legal_basis and declares:
            assert projected["personal_number"] == number, route.name
        else:
            assert "personal_number" not in repr(projected), route.name
            assert number not in xml and number not in repr(projected), route.name


def test_a_route_without_legal_basis_strips_the_personal_number(tmp_path: Path, catalog: Catalog) -> None:
    (tmp_path / "kokuho.yaml").write_text(
        "routes:\n"
        "  - {name: k, destination: kokuho, takes: jumin.idou, when: 'true', projection: kokuho.jumin}\n",
        encoding="utf-8",
    )
    without = RouteTable.load(tmp_path, catalog)
    record = sample(catalog, "tennyu")
    [match] = without.route(record, MUNICIPALITY)
    assert "personal_number" not in match.record
    assert record["personal_number"] not in match.target.to_xml(match.record).decode()
    assert match.record["address_number"] == record["address_number"]  # the rest is copied


def test_projections_copy_exactly_the_fields_of_the_target_spec(table: RouteTable, catalog: Catalog) -> None:
    record = sample(catalog, "tennyu")
    [match] = [m for m in table.route(record, MUNICIPALITY) if m.route.destination == "kokuho"]
    assert list(match.record) == [f.name for f in match.target.fields]
    assert "resident_code" not in match.record  # jumin.idou has it; kokuho.jumin does not declare it
    assert "integrated_address_number" not in match.record
    assert match.record["insurance"] == {"kokuho": True, "kokuho_household": True}  # not kaigo, welfare, ...
    assert match.record["address"] == record["address"]
    assert match.record["address"] is not record["address"]  # a copy, never the source's own dict


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_projection_of_every_sample_is_valid_for_its_target(table: RouteTable, catalog: Catalog,
                                                                  path: Path) -> None:
    record = catalog.get("jumin.idou").from_xml(parse_xml(path.read_bytes()))
    matches = table.route(record, record["municipality_code"], message_id="sample-" + path.stem)
    assert matches
    for match in matches:
        ks = match.target
        ks.xml_schema.assertValid(etree.fromstring(ks.to_xml(match.record)))


def test_a_death_sets_deceased_and_death_date_in_the_fukuhon(table: RouteTable, catalog: Catalog) -> None:
    record = sample(catalog, "shibou")
    [match] = [m for m in table.route(record, MUNICIPALITY) if m.route.destination == "chukan"]
    assert match.record["deceased"] is True
    assert match.record["death_date"] == record["change"]["effective_date"]
    moved = person(catalog, reason="TENKYO")
    [match] = [m for m in table.route(moved, MUNICIPALITY) if m.route.destination == "chukan"]
    assert match.record["deceased"] is False and match.record["death_date"] is None


def test_the_fukuhon_projection_drops_numbers_even_if_the_target_declared_them(table: RouteTable,
                                                                               catalog: Catalog) -> None:
    ks = catalog.get("chukan.fukuhon")
    extra = (Field("personal_number", "string", optional=True), Field("address_number", "string"))
    hostile = KindSchema(dataclasses.replace(ks.spec, fields=extra + ks.spec.fields), catalog.codelists)
    [route] = [r for r in table.routes if r.destination == "chukan"]
    record = sample(catalog, "tenkyo")
    out = Projector(route, hostile)(record, table.context(record, MUNICIPALITY))
    assert "personal_number" not in out and "address_number" not in out
    assert out["integrated_address_number"] == record["integrated_address_number"]


def test_a_notice_is_deterministic_and_carries_no_number_or_name(table: RouteTable,
                                                                 catalog: Catalog) -> None:
    record = sample(catalog, "shussei")

    def notice(message_id: str | None) -> dict[str, Any]:
        matches = table.route(record, MUNICIPALITY, message_id=message_id)
        [m] = [m for m in matches if m.route.destination == "portal"]
        return m.record

    first, again, other = notice("abc"), notice("abc"), notice("def")
    assert first == again
    assert first["notice_id"] != other["notice_id"]
    assert notice(None)["notice_id"] == notice(None)["notice_id"]
    text = repr(first)
    for value in (record["personal_number"], record["household_number"], record["name"]["family_name"],
                  record["name"]["given_name"], record["address"]["banchi"], record["address"]["town"]):
        assert value and value not in text
    assert first["recipient_integrated_address_number"] == record["integrated_address_number"]
    assert first["related_reason"] == "SHUSSEI"
    assert "出生" in first["title"]


def test_routes_restricted_to_municipalities_see_only_theirs(tmp_path: Path, catalog: Catalog) -> None:
    (tmp_path / "zei.yaml").write_text(
        "routes:\n"
        "  - name: zei-chiyoda\n    destination: zei\n    takes: jumin.idou\n    when: 'true'\n"
        "    projection: zei.jumin\n    municipalities: ['131016']\n",
        encoding="utf-8",
    )
    only_chiyoda = RouteTable.load(tmp_path, catalog)
    record = sample(catalog, "tennyu")
    assert [m.route.name for m in only_chiyoda.route(record, "131016")] == ["zei-chiyoda"]
    assert only_chiyoda.route(record, "141003") == []
    assert only_chiyoda.route(record, "131016", kind="portal.shinsei") == []
