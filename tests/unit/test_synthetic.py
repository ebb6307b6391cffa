"""The synthetic registry: deterministic, complete, consistent, and valid by the real validator."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from bus.catalog import Catalog
from bus.synthetic import REASON_GROUPS, REASONS, Registry, expand_reasons
from bus.synthetic.model import age_on
from bus.synthetic.names import ALIAS_FAMILY_NAMES, FAMILY_NAMES, FOREIGN_NAMES, GIVEN_NAMES, NAME_VARIANTS
from bus.synthetic.places import MUNICIPALITIES
from bus.validation.checkdigits import (
    is_valid_municipality_code,
    is_valid_personal_number,
    is_valid_resident_code,
)
from bus.validation.validator import validate

Rec = dict[str, Any]
KANA = re.compile("[ァ-ヺー・\u3000\u3099\u309a]+")
PRIVATE_USE = re.compile("[\ue000-\uf8ff\U000f0000-\U0010ffff]")
ADVANCE = ("TENSHUTSU", "KOKUGAI_TENSHUTSU")
START = date(2025, 4, 1)  # Registry's default start: the snapshot's "today" before any event


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def history() -> tuple[list[Rec], list[Rec]]:
    """(snapshot before any event, 2,000 events) of one registry, seed 2025."""
    reg = Registry(seed=2025)
    return list(reg.snapshot()), list(reg.events(2000))


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)


def test_same_seed_gives_the_same_records() -> None:
    """Two registries with one seed produce identical histories; another seed does not."""
    a, b, c = Registry(seed=11), Registry(seed=11), Registry(seed=12)
    assert list(a.snapshot()) == list(b.snapshot())
    assert list(a.events(500)) == list(b.events(500))
    assert list(a.events(10)) != list(c.events(10))


def test_two_thousand_events_cover_every_change_reason(
    catalog: Catalog, history: tuple[list[Rec], list[Rec]]
) -> None:
    """2,000 events hold every ChangeReason symbol of the code list, and the groups match it."""
    _, events = history
    seen = {r["change"]["reason"] for r in events}
    assert seen == set(catalog.codelists.symbols("ChangeReason")) == set(REASONS)
    for group, symbols in REASON_GROUPS.items():
        assert all(catalog.codelists.group(s) == group for s in symbols)


def test_every_record_passes_the_validator_as_xml_and_avro(
    catalog: Catalog, history: tuple[list[Rec], list[Rec]]
) -> None:
    """The snapshot and every event pass bus.validation.validator.validate in both encodings."""
    ks = catalog.get("jumin.idou")
    snapshot, events = history
    for record in snapshot + events:
        assert validate(ks.to_xml(record), content_type="application/xml", catalog=catalog).record == record
        validate(ks.to_avro(record), content_type="application/avro", kind="jumin.idou", catalog=catalog)


def test_history_numbers_are_consecutive_per_person(history: tuple[list[Rec], list[Rec]]) -> None:
    """Everyone starts at 1 in the snapshot; each later record is the previous number plus one."""
    snapshot, events = history
    last = {(r["municipality_code"], r["address_number"]): r["history_number"] for r in snapshot}
    assert set(last.values()) == {1}
    for r in events:
        key = (r["municipality_code"], r["address_number"])
        assert r["history_number"] == last.get(key, 0) + 1, r["change"]["reason"]
        last[key] = r["history_number"]


def test_removed_persons_change_no_more_except_by_cancellation(history: tuple[list[Rec], list[Rec]]) -> None:
    """After a decrease the only change a person gets is a TORIKESHI that makes them resident again."""
    _, events = history
    removed: set[tuple[str, str]] = set()
    restored = 0
    for r in events:
        key = (r["municipality_code"], r["address_number"])
        if key in removed:
            assert r["change"]["reason"] == "TORIKESHI" and r["resident_status"] == "RESIDENT"
            removed.discard(key)
            restored += 1
        if r["resident_status"] == "REMOVED":
            removed.add(key)
    assert removed


def test_dates_are_in_order(history: tuple[list[Rec], list[Rec]]) -> None:
    """異動日 ≤ 処理日 (except 転出), 届出日 ≤ 処理日, birth ≤ 異動日; 異動日 never goes back per person."""
    snapshot, events = history
    last: dict[tuple[str, str], date] = {}
    ahead = 0
    for r in snapshot + events:
        c = r["change"]
        if c["reason"] not in ADVANCE:
            assert c["effective_date"] <= c["processed_date"]
        elif c["effective_date"] > c["processed_date"]:
            ahead += 1
        assert c["notified_date"] is None or c["notified_date"] <= c["processed_date"]
        assert r["birth_date"] <= c["effective_date"]
        key = (r["municipality_code"], r["address_number"])
        assert c["effective_date"] >= last.get(key, date.min)
        last[key] = c["effective_date"]
    assert ahead > 0  # some 転出 are notified ahead


def test_reason_specific_items(history: tuple[list[Rec], list[Rec]]) -> None:
    """Each 異動事由 carries what it needs: 前住所, 転出先, 転出先国, new numbers, 旧氏, 通称, 取消対象."""
    _, events = history
    previous: dict[tuple[str, str], Rec] = {}
    for r in events:
        key = (r["municipality_code"], r["address_number"])
        before = previous.get(key)
        reason = r["change"]["reason"]
        status = r["resident_status"]
        if reason in REASON_GROUPS["increase"]:
            assert status == "RESIDENT"
        if reason in REASON_GROUPS["decrease"]:
            assert status == "REMOVED"
        if reason in ("TENNYU", "TENKYO"):
            assert r["previous_address"] is not None and r["previous_address"] != r["address"]
        if reason == "TENKYO":
            assert r["previous_address"]["prefecture"] == r["address"]["prefecture"]
        if reason == "TENSHUTSU":
            assert r["moved_out_to"] is not None and r["moved_out_to"]["city"] != r["address"]["city"]
        if reason == "KOKUGAI_TENSHUTSU":
            assert r["moved_out_country"] not in (None, "JP")
        if reason == "SHUSSEI":
            assert r["birth_date"] == r["change"]["effective_date"]
            assert r["relationship"] in ("KO", "KO_NO_KO") and r["history_number"] == 1
        if reason == "TSUSHO":
            assert r["resident_type"] == "FOREIGN"
        if reason == "TORIKESHI":
            assert r["change"]["cancelled_history_number"] == r["history_number"] - 1
        else:
            assert r["change"]["cancelled_history_number"] is None
        if before is not None and reason == "KOJIN_BANGO_HENKO":
            assert r["personal_number"] != before["personal_number"]
        if before is not None and reason == "JUMINHYO_CODE_HENKO":
            assert r["resident_code"] != before["resident_code"]
        if before is not None and reason == "KYUUJI":
            assert r["name"]["former_family_name"] != before["name"]["former_family_name"]
        if before is not None and reason == "SETAI_BUNRI":
            assert r["household_number"] != before["household_number"]
        previous[key] = r


def test_numbers_have_valid_check_digits_and_names_are_clean(history: tuple[list[Rec], list[Rec]]) -> None:
    """個人番号, 住民票コード, 地方公共団体コード are valid; names are NFC, katakana readings, no 外字."""
    snapshot, events = history
    for r in snapshot + events:
        assert is_valid_personal_number(r["personal_number"])
        assert is_valid_resident_code(r["resident_code"])
        assert is_valid_municipality_code(r["municipality_code"])
        for text in strings(r):
            assert unicodedata.normalize("NFC", text) == text
            assert not PRIVATE_USE.search(text)
        for field in ("family_name_kana", "given_name_kana", "former_family_name_kana", "alias_name_kana"):
            kana = r["name"][field]
            assert kana is None or KANA.fullmatch(kana), kana
        assert (r["resident_type"] == "FOREIGN") == (r["nationality"] is not None)
        assert r["name"]["alias_name"] is None or r["resident_type"] == "FOREIGN"


def test_tables_are_valid() -> None:
    """Every municipality code has its check digit; postal codes 7 digits; readings katakana; NFC."""
    for code, m in MUNICIPALITIES.items():
        assert is_valid_municipality_code(code), code
        assert all(re.fullmatch("[0-9]{7}", t.postal_code) for t in m.towns)
    for code in ("131016", "011002", "271004", "141003"):
        assert code in MUNICIPALITIES
    pairs = list(FAMILY_NAMES) + list(ALIAS_FAMILY_NAMES) + [(v, k) for v, k in NAME_VARIANTS.values()]
    pairs += [p for sex in GIVEN_NAMES.values() for cohort in sex.values() for p in cohort]
    pairs += [p for table in FOREIGN_NAMES.values() for names in table.values() for p in names]
    assert len(FAMILY_NAMES) >= 250
    for name, kana in pairs:
        assert unicodedata.normalize("NFC", name) == name and not PRIVATE_USE.search(name)
        assert KANA.fullmatch(kana), (name, kana)


def test_households_have_one_householder_and_ages_hit_every_route_band(
    history: tuple[list[Rec], list[Rec]],
) -> None:
    """Each household has one 世帯主; ages reach every default-route band (<18, 20-64, 40+, 65+, 75+)."""
    snapshot, events = history
    heads = Counter(r["household_number"] for r in snapshot if r["relationship"] == "SETAINUSHI")
    assert set(Counter(r["household_number"] for r in snapshot)) == set(heads)
    assert set(heads.values()) == {1}
    assert len({r["relationship"] for r in snapshot}) >= 15
    bands = {"<18": 0, "20-64": 0, "40+": 0, "65+": 0, "75+": 0}
    for r in events:
        age = age_on(r["birth_date"], r["change"]["effective_date"])
        bands["<18"] += age < 18
        bands["20-64"] += 20 <= age <= 64
        bands["40+"] += age >= 40
        bands["65+"] += age >= 65
        bands["75+"] += age >= 75
    assert all(n >= 50 for n in bands.values()), bands


def test_insurance_flags_fit_the_ages(history: tuple[list[Rec], list[Rec]]) -> None:
    """koki from 75; kaigo from 65, never under 40; no pension under 18; kokuho implies a 国保世帯."""
    snapshot, events = history
    seen: Counter[str] = Counter()
    dated = [(r, START) for r in snapshot] + [(r, r["change"]["effective_date"]) for r in events]
    for r, on in dated:  # a snapshot shows the status today, a change the status on its 異動日
        ins = r["insurance"]
        age = age_on(r["birth_date"], on)
        assert ins["koki"] == (age >= 75)
        assert ins["kaigo"] if age >= 65 else (not ins["kaigo"] or age >= 40)
        assert ins["nenkin_category"] == "NONE" or 18 <= age < 70
        assert not ins["kokuho"] or (ins["kokuho_household"] and not ins["koki"])
        assert not ins["jido_teate"] or r["household_number"]
        seen.update(k for k, v in ins.items() if v is True)
        seen[ins["nenkin_category"]] += 1
    assert {"kokuho", "kokuho_household", "kaigo", "koki", "jido_teate", "welfare"} <= set(seen)
    assert {"NONE", "DAI1GO", "DAI2GO", "DAI3GO"} <= set(seen)


def test_municipality_and_reasons_restrict_the_events() -> None:
    """events(municipality=) keeps to one roll; reasons= draws only those changes (plus what they cause)."""
    reg = Registry(seed=5, households=60)
    assert {r["municipality_code"] for r in reg.events(300, municipality="271004")} == {"271004"}
    for reason in REASONS:
        fresh = Registry(seed=5, municipalities=["472018"], households=20)
        got = [r["change"]["reason"] for r in fresh.events(40, reasons=[reason])]
        assert reason in got
    decrease = {r["change"]["reason"] for r in reg.events(200, reasons=["decrease"])}
    assert decrease <= set(REASON_GROUPS["decrease"]) | {"SETAINUSHI_HENKO", "TENNYU"}


def test_unknown_names_are_refused() -> None:
    """Unknown 異動事由 and municipalities raise ValueError naming what is known."""
    with pytest.raises(ValueError, match="TENNYU"):
        expand_reasons(["MOVE"])
    with pytest.raises(ValueError, match="131016"):
        Registry(municipalities=["999999"])
    with pytest.raises(ValueError, match="not in this registry"):
        next(Registry(households=5).events(1, municipality="472018"))
    assert expand_reasons(["increase", "TENNYU"]) == REASON_GROUPS["increase"]


def test_population_stays_near_its_size_over_many_events() -> None:
    """Increases and decreases balance: 50,000 events leave each roll within a fifth of its size."""
    reg = Registry(seed=9, households=100)
    sizes = {m: reg.population(m) for m in reg.municipalities}
    for _ in reg.events(50_000):
        pass
    for m, size in sizes.items():
        assert 0.75 * size <= reg.population(m) <= 1.25 * size
    assert reg.today > date(2025, 4, 1)


def test_moves_between_municipalities_of_the_registry_keep_the_person() -> None:
    """A 転出 to another roll of the registry comes back as a 転入 there: same 個人番号 and
    住民票コード, a new 宛名番号, living at the 転出先住所 given, 前住所 = the old address."""
    reg = Registry(seed=3, households=80)
    gone: dict[str, Rec] = {}
    arrived = 0
    for r in reg.events(10_000):
        if r["change"]["reason"] == "TENSHUTSU":
            gone[r["personal_number"]] = r
        elif r["change"]["reason"] == "TENNYU" and r["personal_number"] in gone:
            before = gone.pop(r["personal_number"])
            assert r["resident_code"] == before["resident_code"]
            assert r["municipality_code"] != before["municipality_code"]
            assert r["address"] == before["moved_out_to"] and r["previous_address"] == before["address"]
            assert r["change"]["effective_date"] >= before["change"]["effective_date"]
            arrived += 1
    assert arrived > 20
