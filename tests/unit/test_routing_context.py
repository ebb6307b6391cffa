"""The condition context: Japanese age counting, reason groups, 副本 items, no personal data."""

from __future__ import annotations

from datetime import date

import pytest

from bus.catalog import Catalog
from bus.catalog.codelists import CodeLists
from bus.paths import schemas_dir
from bus.routing.context import (
    CHANGED_BY_REASON,
    CONTEXT_VARIABLES,
    FUKUHON_ITEMS,
    age_at_fiscal_year_start,
    age_by_birthday,
    age_on,
    build_context,
    changed_items,
)
from bus.validation.safe_xml import parse_xml


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def tennyu(catalog: Catalog) -> dict:
    ks = catalog.get("jumin.idou")
    raw = (schemas_dir() / "jumin.idou/1/samples/valid/tennyu.xml").read_bytes()
    return ks.from_xml(parse_xml(raw))


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (date(1985, 6, 15), date(2025, 6, 13), 39),  # two days before the 40th birthday
        (date(1985, 6, 15), date(2025, 6, 14), 40),  # the day before: the age is reached
        (date(1985, 6, 15), date(2025, 6, 15), 40),  # the birthday itself
        (date(1985, 6, 15), date(2026, 6, 13), 40),
        (date(1960, 3, 1), date(2025, 2, 27), 64),
        (date(1960, 3, 1), date(2025, 2, 28), 65),  # day before 1 March in a common year
        (date(1964, 3, 1), date(2024, 2, 28), 59),
        (date(1964, 3, 1), date(2024, 2, 29), 60),  # day before 1 March in a leap year
        (date(2025, 5, 20), date(2025, 5, 20), 0),  # 出生: age 0 on the day of birth
        (date(2007, 1, 1), date(2024, 12, 31), 18),  # born 1 January: 18 on 31 December
        (date(2007, 1, 1), date(2024, 12, 30), 17),
    ],
)
def test_age_is_reached_on_the_day_before_the_birthday(birth: date, on: date, age: int) -> None:
    assert age_on(birth, on) == age


@pytest.mark.parametrize(
    ("on", "age"),
    [
        (date(2001, 2, 27), 0),
        (date(2001, 2, 28), 1),  # common year: the period ends at the end of 28 February
        (date(2001, 3, 1), 1),
        (date(2004, 2, 27), 3),
        (date(2004, 2, 28), 4),  # leap year: the day before 29 February
        (date(2004, 2, 29), 4),
        (date(2040, 2, 28), 40),  # 2040 is a leap year: 40 on 28 February, the day before the birthday
        (date(2039, 2, 27), 38),
        (date(2039, 2, 28), 39),
    ],
)
def test_a_person_born_on_29_february_ages_on_28_february(on: date, age: int) -> None:
    assert age_on(date(2000, 2, 29), on) == age


def test_every_change_reason_has_its_fukuhon_items() -> None:
    """Every reason of v1 (ChangeReason) and v2 (ChangeReason2) says which 副本 items it alters."""
    lists = CodeLists.load()
    reasons = {*lists.symbols("ChangeReason"), *lists.symbols("ChangeReason2")}
    assert reasons == set(CHANGED_BY_REASON)
    assert all(set(items) <= set(FUKUHON_ITEMS) for items in CHANGED_BY_REASON.values())


@pytest.mark.parametrize(
    ("reason", "items"),
    [
        ("TENKYO", ["address"]),
        ("SHIMEI_HENKO", ["name"]),
        ("SHIBOU", ["death"]),
        ("TENSHUTSU", ["moved_out"]),
        ("KOKUGAI_TENSHUTSU", ["moved_out"]),
        ("TENNYU", ["address", "name", "birth_date", "sex"]),
        ("GOKI_SHUSEI", list(FUKUHON_ITEMS)),
        ("SHOKKEN_SHUSEI", list(FUKUHON_ITEMS)),
        ("SETAI_BUNRI", ["household"]),
        ("KOJIN_BANGO_HENKO", []),
        ("NOT_A_REASON", list(FUKUHON_ITEMS)),
    ],
)
def test_changed_items_are_derived_from_the_reason(reason: str, items: list[str]) -> None:
    assert changed_items(reason) == items


def test_context_has_exactly_the_documented_variables(catalog: Catalog, tennyu: dict) -> None:
    context = build_context(tennyu, "131016", catalog.codelists.group)
    assert list(context) == list(CONTEXT_VARIABLES)
    assert context["reason"] == "TENNYU"
    assert context["group"] == "increase"
    assert context["age"] == 39  # born 1985-06-12, 異動日 2025-04-01
    assert context["kokuho"] is True
    assert context["has_personal_number"] is True
    assert context["changed"] == ["address", "name", "birth_date", "sex"]


def test_context_carries_no_personal_data(catalog: Catalog, tennyu: dict) -> None:
    context = build_context(tennyu, "131016", catalog.codelists.group)
    text = repr(context)
    personal = [
        tennyu["address_number"], tennyu["personal_number"], tennyu["resident_code"],
        tennyu["integrated_address_number"], tennyu["household_number"], tennyu["birth_date"].isoformat(),
        *[v for v in tennyu["name"].values() if v], *[v for v in tennyu["address"].values() if v],
    ]
    for value in personal:
        if value in ("東京都", "千代田区"):  # prefecture and city are not personal
            continue
        assert str(value) not in text, value


def test_missing_flags_read_as_false_and_unknown_reason_has_no_group(catalog: Catalog, tennyu: dict) -> None:
    record = {**tennyu, "insurance": None, "personal_number": None,
              "change": {**tennyu["change"], "reason": "SOMETHING"}}
    context = build_context(record, "131016", catalog.codelists.group)
    assert context["kokuho"] is False and context["welfare"] is False
    assert context["nenkin_category"] == "NONE"
    assert context["has_personal_number"] is False
    assert context["group"] == ""


def test_the_routing_package_exports_exactly_its_public_names() -> None:
    import bus.routing

    assert sorted(bus.routing.__all__) == sorted(set(bus.routing.__all__))
    assert all(hasattr(bus.routing, name) for name in bus.routing.__all__)


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (date(2007, 4, 2), date(2025, 3, 31), 16),  # 年度 2024
        (date(2007, 4, 2), date(2026, 3, 31), 17),  # 年度 2025: 18 is reached on its first day only
        (date(2007, 4, 2), date(2026, 4, 1), 18),
        (date(2007, 4, 1), date(2025, 3, 31), 17),  # 18 reached on 2025-03-31, in 年度 2024
        (date(2007, 4, 1), date(2025, 4, 1), 18),
        (date(2008, 2, 29), date(2026, 5, 1), 18),  # 18 reached on 2026-02-28, in 年度 2025
    ],
)
def test_age_at_fiscal_year_start_counts_to_the_first_31_march(birth: date, on: date, age: int) -> None:
    """児童手当法 第3条: a 児童 until the first 31 March after the day 18 is reached."""
    assert age_at_fiscal_year_start(birth, on) == age


@pytest.mark.parametrize(
    ("on", "age"), [(date(2025, 6, 14), 74), (date(2025, 6, 15), 75)],
)
def test_age_by_birthday_turns_on_the_birthday_itself(on: date, age: int) -> None:
    """後期高齢者医療: 資格 from the 75th birthday, one day after the legal age count."""
    assert age_by_birthday(date(1950, 6, 15), on) == age


def test_a_v2_record_gives_the_same_facts_from_its_registry_dates(catalog: Catalog, tennyu: dict) -> None:
    """A v2 record (不詳日 with the registry's internal date, the standard's 続柄 and 住民状態) gives
    the context the same kind of values: ages from the reference dates, v1 symbols."""
    from bus.catalog.upgrade import upgrade_jumin_idou

    v2 = upgrade_jumin_idou(tennyu)
    v2["birth_date"] = {"text": "昭和60年6月頃", "reference_date": tennyu["birth_date"]}
    v2["relationship"] = "妻の子"
    v2["insurance"]["koki_disability_certified"] = True
    context = build_context(v2, "131016", catalog.codelists.group)
    assert context["age"] == build_context(tennyu, "131016", catalog.codelists.group)["age"]
    assert context["relationship"] == "ENKOSHA" and context["resident_status"] == "RESIDENT"
    assert context["koki_disability_certified"] is True
    v2["relationship"] = None  # 世帯主未設定
    assert build_context(v2, "131016", catalog.codelists.group)["relationship"] == ""
