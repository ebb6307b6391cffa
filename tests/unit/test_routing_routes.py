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
    ("born", "flags", "koki"),
    [
        (date(1950, 4, 3), {}, False),  # 74: the 75th birthday is in two days
        (date(1950, 4, 2), {}, False),  # legal age 75 reached today, the birthday is tomorrow: not yet (第52条)
        (date(1950, 4, 1), {}, True),  # the 75th birthday: 資格 from that day (高確法 第52条)
        (date(1930, 1, 1), {}, True),
        (date(1960, 4, 2), {}, False),  # 65 reached, no 障害認定: not insured (was sent before)
        (date(1960, 4, 2), {"koki_disability_certified": True}, True),  # 65 with a 障害認定
        (date(1960, 4, 3), {"koki_disability_certified": True}, False),  # 64: 障害認定 starts at 65
        (date(1955, 1, 1), {"koki": True}, True),  # recorded as insured
    ],
)
def test_koki_takes_the_insured_of_the_kouiki_rengo(table: RouteTable, catalog: Catalog, born: date,
                                                    flags: dict[str, bool], koki: bool) -> None:
    """高齢者の医療の確保に関する法律 第50条: 75 or over, and 65–74 with a 障害認定."""
    got = destinations(table, person(catalog, born=born, **flags))
    assert ("koki" in got) is koki


@pytest.mark.parametrize(
    ("born", "category", "nenkin"),
    [
        (date(2005, 4, 3), "NONE", False),  # 19 on 2025-04-01
        (date(2005, 4, 2), "NONE", True),  # 20 reached on 2025-04-01 (資格取得, 国民年金法 第8条)
        (date(1965, 4, 3), "NONE", True),  # 59
        (date(1965, 4, 2), "NONE", False),  # 60 reached today: 第1号 ends (第9条)
        (date(1965, 4, 2), "DAI1GO", True),  # 60, recorded 第1号: 任意加入
        (date(1960, 4, 3), "DAI1GO", True),  # 64, 任意加入
        (date(1955, 4, 2), "DAI1GO", False),  # 70
        (date(1960, 4, 3), "DAI3GO", False),  # 64 and 第3号: impossible after 60, not sent
    ],
)
def test_nenkin_takes_dai1go_aged_20_to_59_and_voluntary_members_after(
    table: RouteTable, catalog: Catalog, born: date, category: str, nenkin: bool
) -> None:
    """国民年金法 第7条第1項第1号: 20–59; 60 and over only 任意加入 (附則第5条)."""
    got = destinations(table, person(catalog, born=born, nenkin_category=category))
    assert ("nenkin" in got) is nenkin


@pytest.mark.parametrize(
    ("born", "on", "flags", "fukushi"),
    [
        (date(2007, 4, 2), date(2025, 4, 1), {}, True),  # 18 reached 2025-04-01: 児童 to 2026-03-31
        (date(2007, 4, 2), date(2026, 3, 31), {}, True),  # the first 31 March after 18: still a 児童
        (date(2007, 4, 2), date(2026, 4, 1), {}, False),  # the day after
        (date(2007, 4, 1), date(2025, 3, 31), {}, True),  # 18 reached on a 31 March: that day itself
        (date(2007, 4, 1), date(2025, 4, 1), {}, False),
        (date(2015, 1, 1), date(2025, 4, 1), {}, True),
        (date(1985, 1, 1), date(2025, 4, 1), {"jido_teate": True}, True),  # the 受給者, a parent
        (date(2004, 6, 1), date(2025, 4, 1), {"jido_teate": True}, True),  # 20, counted up to 22
        (date(1985, 1, 1), date(2025, 4, 1), {"welfare": True}, False),  # 生活保護 is not 児童手当
        (date(1985, 1, 1), date(2025, 4, 1), {}, False),
    ],
)
def test_fukushi_takes_children_to_the_first_31_march_after_18_and_receiving_households(
    table: RouteTable, catalog: Catalog, born: date, on: date, flags: dict[str, bool], fukushi: bool
) -> None:
    """児童手当法 第3条第1項 (2024 reform): 18歳に達する日以後の最初の3月31日まで."""
    got = destinations(table, person(catalog, born=born, on=on, **flags))
    assert ("fukushi" in got) is fukushi


@pytest.mark.parametrize(
    ("born", "flags", "kaigo"),
    [
        (date(1995, 1, 1), {}, False),  # 30
        (date(1995, 1, 1), {"kaigo_household": True}, True),  # a member of a 第1号's household
        (date(1955, 1, 1), {}, True),
        (date(1995, 1, 1), {"kaigo": True}, True),
    ],
)
def test_kaigo_takes_members_of_a_household_with_a_first_category_insured(
    table: RouteTable, catalog: Catalog, born: date, flags: dict[str, bool], kaigo: bool
) -> None:
    """介護保険 第1号 保険料段階 depends on the household's tax status (介護保険法施行令 第38条)."""
    assert ("kaigo" in destinations(table, person(catalog, born=born, **flags))) is kaigo


def test_no_legal_basis_uses_the_numbering_before_the_2023_amendment(table: RouteTable) -> None:
    """別表第一/別表第二 were merged into one 別表 in 2023: no route cites the old tables."""
    bases = [r.legal_basis for r in table.routes if r.legal_basis]
    assert bases
    assert [b for b in bases if "別表第一" in b or "別表第二" in b] == []


def test_every_route_file_cites_its_law() -> None:
    """Each shipped route file names, in its header, the law (法 + 第N条) its condition follows."""
    import re

    for path in sorted(routes_dir().glob("*.yaml")):
        header = path.read_text(encoding="utf-8").split("routes:", 1)[0]
        assert re.search(r"Law: .*法.*第[0-9]+条", header, re.S), path.name


@pytest.mark.parametrize(
    ("reason", "flags", "kokuho"),
    [
        ("TENKYO", {}, False),
        ("TENKYO", {"kokuho": True}, True),
        ("TENKYO", {"kokuho_household": True}, True),
        ("TENNYU", {}, True),
        ("KOKUGAI_TENNYU", {}, True),
        ("SHUSSEI", {}, True),
        ("SHOKKEN_KISAI", {}, True),  # 住所設定・未届転入 recorded ex officio (standard 4.2.1.1): an arrival too
        ("TENSHUTSU", {}, False),
        ("TENSHUTSU", {"kokuho": True}, True),
    ],
)
def test_kokuho_takes_its_households_and_every_move_in_and_birth(
    table: RouteTable, catalog: Catalog, reason: str, flags: dict[str, bool], kokuho: bool
) -> None:
    assert ("kokuho" in destinations(table, person(catalog, reason=reason, **flags))) is kokuho


@pytest.mark.parametrize(
    ("reason", "items"),
    [
        ("TENKYO", ["address"]), ("SHIMEI_HENKO", ["name"]), ("SHIBOU", ["death"]), ("TENSHUTSU", ["moved_out"]),
        ("TENNYU", ["address", "name", "birth_date", "sex"]), ("SETAI_BUNRI", ["household"]),
        ("SETAINUSHI_HENKO", ["household"]), ("KOJIN_BANGO_HENKO", []),
    ],
)
def test_the_integrated_address_function_gets_every_change_with_the_fukuhon_items_it_alters(
        table: RouteTable, catalog: Catalog, reason: str, items: list[str]) -> None:
    """団体内統合宛名 (togo) is the path to the 中間サーバー: it gets every change; 世帯 changes
    alter the household item of the 副本 (住民票関係情報); no route goes to chukan directly."""
    got = {m.route.destination: m for m in table.route(person(catalog, reason=reason), MUNICIPALITY)}
    assert "chukan" not in got
    assert got["togo"].record["fukuhon_items"] == items
    assert "personal_number" not in got["togo"].record


@pytest.fixture(scope="module")
def chukan_table(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> RouteTable:
    """A direct route to the 中間サーバー, as an integrator whose 統合宛名 system sits outside may write."""
    folder = tmp_path_factory.mktemp("routes")
    (folder / "chukan.yaml").write_text(
        "routes:\n  - {name: chukan-fukuhon, destination: chukan, takes: jumin.idou, when: 'size(changed) > 0',\n"
        "     projection: {kind: chukan.fukuhon, function: chukan_fukuhon}}\n", encoding="utf-8")
    return RouteTable.load(folder, catalog)


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


@pytest.mark.parametrize(
    ("born", "on", "notice"),
    [
        (date(2007, 4, 2), date(2025, 4, 1), True),  # 18 reached that day: a 児童 to 2026-03-31
        (date(2007, 4, 2), date(2026, 3, 31), True),  # the first 31 March after 18
        (date(2007, 4, 2), date(2026, 4, 1), False),
        (date(2007, 4, 1), date(2025, 4, 1), False),  # 18 reached on 31 March: 児童 no longer
    ],
)
def test_the_child_allowance_notice_follows_the_child_allowances_age_rule_to_31_march_after_18(
    table: RouteTable, catalog: Catalog, born: date, on: date, notice: bool
) -> None:
    """The 申請案内 goes to every 児童 who moved in, 児童手当法 第3条第1項 as the fukushi route reads it."""
    record = person(catalog, reason="TENNYU", born=born, on=on)
    assert ("portal-jido-teate-annai" in routes_hit(table, record)) is notice
    assert ("fukushi" in destinations(table, record)) is notice


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


def test_a_death_sets_deceased_and_death_date_in_the_fukuhon(chukan_table: RouteTable, catalog: Catalog) -> None:
    table = chukan_table
    record = sample(catalog, "shibou")
    [match] = [m for m in table.route(record, MUNICIPALITY) if m.route.destination == "chukan"]
    assert match.record["deceased"] is True
    assert match.record["death_date"] == record["change"]["effective_date"]
    moved = person(catalog, reason="TENKYO")
    [match] = [m for m in table.route(moved, MUNICIPALITY) if m.route.destination == "chukan"]
    assert match.record["deceased"] is False and match.record["death_date"] is None


def test_the_fukuhon_projection_drops_numbers_even_if_the_target_declared_them(chukan_table: RouteTable,
                                                                               catalog: Catalog) -> None:
    table = chukan_table
    ks = catalog.get("chukan.fukuhon")
    extra = (Field("personal_number", "string", optional=True), Field("address_number", "string"))
    hostile = KindSchema(dataclasses.replace(ks.spec, fields=extra + ks.spec.fields), catalog.codelists)
    [route] = [r for r in table.routes if r.destination == "chukan"]
    record = sample(catalog, "tenkyo")
    out = Projector(route, hostile)(record, table.context(record, MUNICIPALITY))
    assert "personal_number" not in out and "address_number" not in out
    assert out["integrated_address_number"] == record["integrated_address_number"]


def test_a_notice_is_deterministic_and_carries_no_personal_number_name_or_address(table: RouteTable,
                                                                                 catalog: Catalog) -> None:
    """The notice goes to the 団体内統合宛名 function (togo_oshirase), which addresses it: the
    bus sends who it is about (宛名番号, 世帯), never a 個人番号, a name or an address."""
    record = sample(catalog, "shussei")

    def notice(message_id: str | None) -> dict[str, Any]:
        matches = table.route(record, MUNICIPALITY, message_id=message_id)
        assert not [m for m in matches if m.route.destination == "portal"]  # never straight to the portal
        [m] = [m for m in matches if m.route.destination == "togo_oshirase"]
        return m.record

    first, again, other = notice("abc"), notice("abc"), notice("def")
    assert first == again
    assert first["notice_id"] != other["notice_id"]
    assert notice(None)["notice_id"] == notice(None)["notice_id"]
    text = repr(first)
    for value in (record["personal_number"], record["name"]["family_name"],
                  record["name"]["given_name"], record["address"]["banchi"], record["address"]["town"]):
        assert value and value not in text
    assert (first["address_number"], first["household_number"]) == (record["address_number"],
                                                                      record["household_number"])
    assert first["addressee"] == "householder" and "recipient_integrated_address_number" not in first
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
