"""The 選挙人名簿 (公職選挙法 第21条) and 学齢簿 (学校教育法施行令 第1条) routes, boundary by
boundary: the 18th birthday, the 3 months on the registry, the 4月1日 of a 学年."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bus.catalog import Catalog
from bus.paths import routes_dir, schemas_dir
from bus.routing import RouteTable
from bus.routing.context import months_later, registered_since
from bus.validation.safe_xml import parse_xml

MUNICIPALITY = "131016"
CATALOG = Catalog.load()
TABLE = RouteTable.load(routes_dir(), CATALOG)


def _sample(version: int, name: str) -> dict[str, Any]:
    raw = (schemas_dir() / f"jumin.idou/{version}/samples/valid/{name}.xml").read_bytes()
    return CATALOG.get("jumin.idou", version).from_xml(parse_xml(raw))


TENNYU_V1 = _sample(1, "tennyu")
TENKYO_V2 = _sample(2, "tenkyo")


def v1_change(*, reason: str = "TENKYO", born: date, on: date, resident_type: str = "JAPANESE",
              notified: date | None = None) -> dict[str, Any]:
    """A v1 resident change built on the 転入 sample."""
    record = copy.deepcopy(TENNYU_V1)
    record["change"].update(reason=reason, effective_date=on, processed_date=notified or on,
                            notified_date=notified)
    record["birth_date"] = born
    record["resident_type"] = resident_type
    return record


def v2_change(*, born: date, on: date, resident_since: date | None, registered: bool | None = None,
              resident_type: str = "JAPANESE") -> dict[str, Any]:
    """A v2 転居 (not an increase) of a person who became a resident on `resident_since`."""
    record = copy.deepcopy(TENKYO_V2)
    record["change"]["effective_date"] = {"text": on.isoformat(), "reference_date": on}
    record["change"]["processed_date"] = on
    record["change"]["notified_date"] = on
    record["birth_date"] = {"text": born.isoformat(), "reference_date": born}
    record["became_resident_date"] = (None if resident_since is None else
                                      {"text": resident_since.isoformat(), "reference_date": resident_since})
    record["elector_registered"] = registered
    record["resident_type"] = resident_type
    return record


def reaches(record: dict[str, Any], destination: str) -> bool:
    return destination in {m.route.destination for m in TABLE.route(record, MUNICIPALITY)}


@pytest.mark.parametrize(
    ("born", "reaches_senkyo"),
    [
        (date(2007, 6, 16), False),  # 18th birthday on 2025-06-16: 17 on 2025-06-14
        (date(2007, 6, 15), True),  # the day before the 18th birthday: 18 is reached (民法 第143条)
        (date(2007, 6, 14), True),
    ],
)
def test_senkyo_takes_a_japanese_national_from_the_day_before_the_18th_birthday(
    born: date, reaches_senkyo: bool
) -> None:
    """公職選挙法 第21条第1項: 年齢満十八年以上 (a 転居 on 2025-06-14, resident for years)."""
    record = v2_change(born=born, on=date(2025, 6, 14), resident_since=date(2000, 1, 1))
    assert reaches(record, "senkyo") is reaches_senkyo


def test_senkyo_does_not_take_a_foreign_resident_however_long_registered() -> None:
    record = v2_change(born=date(1980, 1, 1), on=date(2025, 6, 14), resident_since=date(2000, 1, 1),
                       resident_type="FOREIGN")
    assert not reaches(record, "senkyo")
    assert reaches(record, "zei")


@pytest.mark.parametrize(
    ("on", "reaches_senkyo"),
    [
        (date(2025, 8, 31), False),  # resident since 2025-06-01: not yet 3 months
        (date(2025, 9, 1), True),  # 3 months: 基準日 9月1日 takes those who came by 6月1日
        (date(2025, 9, 2), True),
    ],
)
def test_senkyo_takes_a_change_after_three_months_on_the_registry(on: date, reaches_senkyo: bool) -> None:
    """公職選挙法 第21条第1項: 引き続き三箇月以上 住民基本台帳に記録されている者."""
    record = v2_change(born=date(1980, 1, 1), on=on, resident_since=date(2025, 6, 1))
    assert reaches(record, "senkyo") is reaches_senkyo


def test_senkyo_takes_the_move_in_of_an_adult_that_starts_the_three_months() -> None:
    """The 転入 itself is sent (the committee counts 3 months from its 届出日), a 17-year-old's not."""
    adult = v1_change(reason="TENNYU", born=date(1980, 1, 1), on=date(2025, 4, 1), notified=date(2025, 4, 7))
    assert reaches(adult, "senkyo")
    assert registered_since(adult) == date(2025, 4, 7)  # from the 届出, not the 転入日
    minor = v1_change(reason="TENNYU", born=date(2008, 4, 3), on=date(2025, 4, 1))
    assert not reaches(minor, "senkyo")


def test_senkyo_takes_every_change_of_a_registered_elector_including_removals() -> None:
    """第28条: 抹消 on 死亡 and 国籍喪失, 表示 on 転出 — the committee needs them."""
    record = v2_change(born=date(1980, 1, 1), on=date(2025, 6, 14), resident_since=date(2025, 6, 1),
                       registered=True)
    assert reaches(record, "senkyo")  # resident 2 weeks, but on the 名簿 (moved back in)
    record["resident_type"] = "FOREIGN"  # 国籍喪失 as the registry writes it after the change
    assert reaches(record, "senkyo")


def test_months_later_keeps_the_day_or_takes_the_last_day_of_a_shorter_month() -> None:
    assert months_later(date(2025, 6, 1), 3) == date(2025, 9, 1)
    assert months_later(date(2025, 11, 30), 3) == date(2026, 2, 28)
    assert months_later(date(2023, 11, 30), 3) == date(2024, 2, 29)
    assert months_later(date(2025, 10, 31), 3) == date(2026, 1, 31)


@pytest.mark.parametrize(
    ("born", "on", "reaches_shugaku"),
    [
        (date(2020, 4, 2), date(2025, 4, 1), False),  # 学年 2025: 4 on its 4月1日, enters in 2027
        (date(2020, 4, 1), date(2025, 4, 1), True),  # one day older: 5 → enters 2026, 学齢簿 by 10月1日 (施行令 第2条)
        (date(2020, 4, 2), date(2026, 3, 31), False),
        (date(2020, 4, 2), date(2026, 4, 1), True),  # the 学年 before it enters
        (date(2019, 4, 2), date(2026, 4, 1), True),  # enters 小学校 on 2026-04-01
        (date(2019, 4, 1), date(2019, 4, 1), False),  # born on 4月1日: a newborn is not yet on it
        (date(2010, 4, 1), date(2025, 3, 31), True),  # reaches 15 on 2025-03-31: last day of its last 学年
        (date(2010, 4, 1), date(2025, 4, 1), False),  # the next 学年: 学齢 over
        (date(2010, 4, 2), date(2025, 4, 1), True),  # one day younger: one more 学年 (中学3年)
        (date(2010, 4, 2), date(2026, 3, 31), True),
        (date(2010, 4, 2), date(2026, 4, 1), False),
    ],
)
def test_shugaku_takes_children_from_the_school_year_before_6_to_the_end_of_the_one_they_reach_15(
    born: date, on: date, reaches_shugaku: bool
) -> None:
    """学校教育法 第17条 and 学校教育法施行令 第1条, 第2条; 4月1日 is the first day of a 学年."""
    assert reaches(v1_change(born=born, on=on), "shugaku") is reaches_shugaku


def test_shugaku_takes_the_move_out_and_death_of_a_child_of_school_age() -> None:
    for reason in ("TENSHUTSU", "KOKUGAI_TENSHUTSU", "SHIBOU"):
        assert reaches(v1_change(reason=reason, born=date(2015, 5, 5), on=date(2025, 6, 1)), "shugaku"), reason


def test_senkyo_and_shugaku_never_receive_a_personal_number() -> None:
    record = v1_change(reason="TENNYU", born=date(2012, 1, 1), on=date(2025, 4, 1))
    record["personal_number"] = "123456789018"
    matches = [m for m in TABLE.route(record, MUNICIPALITY) if m.route.destination == "shugaku"]
    assert matches and all("personal_number" not in m.record or m.record["personal_number"] is None
                           for m in matches)
    assert all(r.legal_basis is None for r in TABLE.routes if r.destination in ("senkyo", "shugaku"))


@pytest.mark.parametrize("kind", ["senkyo.jumin", "shugaku.jumin"])
def test_the_projection_of_every_v1_sample_is_valid_for_the_new_kinds(kind: str) -> None:
    for path in sorted(Path(schemas_dir() / "jumin.idou/1/samples/valid").glob("*.xml")):
        record = CATALOG.get("jumin.idou").from_xml(parse_xml(path.read_bytes()))
        record["birth_date"] = date(2014, 5, 5)  # school age and, once, elector_registered
        record["elector_registered"] = True
        for m in TABLE.route(record, MUNICIPALITY):
            if m.target.kind == kind:
                m.target.xml_schema.assertValid(parse_xml(m.target.to_xml(m.record)))
