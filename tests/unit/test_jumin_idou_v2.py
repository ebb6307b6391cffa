"""jumin.idou v2 (issue 12): the 住民記録 standard's items and codes; v1 converted to it."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bus.catalog import Catalog
from bus.catalog.upgrade import upgrade_jumin_idou
from bus.errors import ValidationFailed
from bus.validation import validate
from bus.validation.checkdigits import address_number_check_digit, is_valid_address_number
from bus.validation.safe_xml import parse_xml


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def v1_samples(catalog: Catalog) -> list[Path]:
    return sorted((catalog.get("jumin.idou", 1).samples_dir / "valid").glob("*.xml"))


def v2_sample(catalog: Catalog, name: str) -> dict[str, Any]:
    ks = catalog.get("jumin.idou", 2)
    return ks.from_xml(parse_xml((ks.samples_dir / "valid" / f"{name}.xml").read_bytes()))


def check(catalog: Catalog, record: dict[str, Any]) -> list[str]:
    """The issue codes of a v2 record (after XML serialisation), [] when valid."""
    xml = catalog.get("jumin.idou", 2).to_xml(record)
    try:
        validate(xml, content_type="application/xml", catalog=catalog)
    except ValidationFailed as exc:
        return [i.code for i in exc.issues]
    return []


def test_v2_is_validated_when_named_but_never_the_default_version(catalog: Catalog) -> None:
    """A preview version: XML in its namespace is v2; `get('jumin.idou')` stays v1."""
    assert catalog.get("jumin.idou").version == 1
    raw = (catalog.get("jumin.idou", 2).samples_dir / "valid" / "tennyu.xml").read_bytes()
    assert validate(raw, content_type="application/xml", catalog=catalog).kind_schema.version == 2


def test_every_v1_sample_converts_to_a_valid_v2_message(catalog: Catalog) -> None:
    ks1 = catalog.get("jumin.idou", 1)
    paths = v1_samples(catalog)
    assert len(paths) >= 10
    for path in paths:
        v1 = ks1.from_xml(parse_xml(path.read_bytes()))
        before = copy.deepcopy(v1)
        v2 = upgrade_jumin_idou(v1)
        assert v1 == before, "the converter does not touch its input"
        assert check(catalog, v2) == [], path.name


@pytest.mark.parametrize(
    ("field", "v1_value", "v2_field", "v2_value"),
    [
        ("reason", "SHIMEI_HENKO", "reason", "SHOKKEN_SHUSEI"),
        ("reason", "KOJIN_BANGO_HENKO", "reason", "KOJIN_BANGO_HENKO_SEIKYU"),
        ("relationship", "SOFU", "relationship", "縁故者"),
        ("relationship", "KO_NO_TSUMA", "relationship", "子の妻"),
        ("nenkin_category", "DAI2GO", "nenkin_category", "NONE"),
    ],
)
def test_the_converter_maps_v1_codes_to_the_standards(catalog: Catalog, field: str, v1_value: str,
                                                     v2_field: str, v2_value: str) -> None:
    v1 = catalog.get("jumin.idou", 1).from_xml(parse_xml(v1_samples(catalog)[0].read_bytes()))
    where = {"reason": v1["change"], "nenkin_category": v1["insurance"]}.get(field, v1)
    where[field] = v1_value
    v2 = upgrade_jumin_idou(v1)
    got = {"reason": v2["change"], "nenkin_category": v2["insurance"]}.get(v2_field, v2)[v2_field]
    assert got == v2_value


def test_a_cancellation_in_v1_becomes_a_cancellation_of_the_standard(catalog: Catalog) -> None:
    """TORIKESHI → TORIKESHI_GEN when the person is removed after it, else TORIKESHI_SHUSEI."""
    path = next(p for p in v1_samples(catalog) if p.stem == "torikeshi")
    v1 = catalog.get("jumin.idou", 1).from_xml(parse_xml(path.read_bytes()))
    v2 = upgrade_jumin_idou(v1)
    assert v2["change"]["reason"] in ("TORIKESHI_GEN", "TORIKESHI_SHUSEI")
    assert v2["change"]["cancelled_history_number"] == v1["change"]["cancelled_history_number"]


def test_a_standard_registry_file_validates_and_is_carried_unchanged(catalog: Catalog) -> None:
    """Compatibility ideographs, IVS, no 統合宛名番号; a foreign resident with an alphabet name,
    no 振り仮名, a 不詳日 of birth and a 支援措置: all valid, the text exactly as written."""
    japanese = v2_sample(catalog, "hyojun_tennyu")
    assert japanese["integrated_address_number"] is None
    assert japanese["name"]["family_name"] == "\ufa10本"
    assert japanese["name"]["given_name"] == "辻\U000e0100郎"
    foreign = v2_sample(catalog, "gaikokujin_fushou_shien")
    assert foreign["birth_date"] == {"text": "1990年月日不詳", "reference_date": date(1990, 7, 1)}
    assert foreign["support_measure"] is True
    assert foreign["name"]["family_name_kana"] is None
    assert foreign["foreign_resident"]["category"] == "CHUCHOKI"
    assert check(catalog, japanese) == [] and check(catalog, foreign) == []


def test_the_v2_reasons_are_the_standards_list(catalog: Catalog) -> None:
    """1.2.2 異動事由: 9 記載, 9 消除, 20 修正 reasons (with 区間異動), each with its group."""
    cl = catalog.codelists
    symbols = cl.symbols("ChangeReason2")
    groups = [cl.group(s) for s in symbols]
    assert (groups.count("increase"), groups.count("decrease"), groups.count("correction")) == (9, 9, 20)
    assert "SHIMEI_HENKO" not in symbols and "TORIKESHI" not in symbols
    assert {"TORIKESHI_ZO", "TORIKESHI_GEN", "TORIKESHI_SHUSEI", "KAISEI_KISAI", "SAISEI_SHOJO",
            "SHOKKEN_KISAI_KIKA", "SHOKKEN_SHOJO_KOKUSEKI_SOSHITSU", "KUKAN_IDOU"} <= set(symbols)


@pytest.mark.parametrize(
    ("relationship", "valid"),
    [("世帯主", True), ("妻の子", True), ("子の子の子の子", True), ("妻（未届）", True), ("同居人", True),
     (None, True), ("子の子の子の子の子", False), ("祖父", False), ("孫", False)],
    ids=["householder", "stepchild", "four-generations", "unregistered-wife", "lodger", "householder-unset",
         "five-generations", "grandfather", "grandchild"],
)
def test_relationships_are_the_standards_words_with_chains_of_up_to_four(
        catalog: Catalog, relationship: str | None, valid: bool) -> None:
    """1.1.11 続柄: ② and chains of up to four; 祖父/孫 are 実装しない; absent is 世帯主未設定."""
    record = v2_sample(catalog, "tennyu")
    record["relationship"] = relationship
    assert (check(catalog, record) == []) is valid


def test_an_unknown_day_needs_the_registrys_internal_date(catalog: Catalog) -> None:
    """1.1.8: a 不詳日 or a non-calendar date travels as written, with reference_date beside it."""
    record = v2_sample(catalog, "tennyu")
    record["birth_date"] = {"text": "1985-02-29", "reference_date": date(1985, 3, 1)}
    assert check(catalog, record) == []
    record["birth_date"] = {"text": "昭和60年春", "reference_date": None}
    assert check(catalog, record) == ["R430"]
    record["birth_date"] = {"text": "1985-06-12", "reference_date": date(1985, 6, 13)}
    assert check(catalog, record) == ["R430"]


@pytest.mark.parametrize(
    ("reason", "resident_type", "valid"),
    [("SHOKKEN_KISAI_KIKA", "JAPANESE", True), ("SHOKKEN_SHOJO_KIKA", "JAPANESE", False)],
)
def test_naturalisation_reasons_fit_one_resident_type(catalog: Catalog, reason: str, resident_type: str,
                                                       valid: bool) -> None:
    record = v2_sample(catalog, "shokken_kisai_kika")
    record["change"]["reason"] = reason
    record["resident_type"] = resident_type
    if reason.startswith("SHOKKEN_SHOJO"):
        record["resident_status"] = "SHOJO"
    assert (check(catalog, record) == []) is valid


def test_address_and_household_numbers_have_the_standards_check_digit() -> None:
    """1.1.13: M11W2～7 from the rightmost digit, remainder 0 → 0; remainder 1 gives no digit."""
    assert address_number_check_digit("1234567") == 4  # 7·2+6·3+5·4+4·5+3·6+2·7+1·2 = 106, 106 % 11 = 7
    assert is_valid_address_number("12345674") and not is_valid_address_number("12345675")
    assert address_number_check_digit("6") is None  # 6·2 = 12, remainder 1
    with pytest.raises(ValueError):
        address_number_check_digit("12a")


def test_the_items_inside_a_personal_date_are_masked_in_errors(catalog: Catalog) -> None:
    """A 不詳日 of birth is personal as a whole: an error about its parts never shows them."""
    record = v2_sample(catalog, "tennyu")
    record["birth_date"] = {"text": "昭和60年春", "reference_date": None}
    xml = catalog.get("jumin.idou", 2).to_xml(record)
    with pytest.raises(ValidationFailed) as caught:
        validate(xml, content_type="application/xml", catalog=catalog)
    record["birth_date"] = {"text": "1985-06-12", "reference_date": date(1985, 6, 13)}
    with pytest.raises(ValidationFailed) as second:
        validate(catalog.get("jumin.idou", 2).to_xml(record), content_type="application/xml", catalog=catalog)
    [issue] = second.value.issues
    assert issue.value is not None and "1985" not in issue.value and "1985" not in str(issue)
    assert "昭和60年春" not in str(caught.value.issues[0])


def test_the_pension_dates_and_child_allowance_months_of_item_1_1_1_are_carried(catalog: Catalog) -> None:
    """1.1.1: 国民年金 資格取得・喪失年月日 and 種別の変更があった年月日; 児童手当の受給開始・終了年月."""
    assert v2_sample(catalog, "hyojun_tennyu")["insurance"]["nenkin_acquired"] == date(2005, 6, 11)
    assert v2_sample(catalog, "shimei_henko")["insurance"]["nenkin_category_changed"] == date(2024, 10, 5)
    receiving = v2_sample(catalog, "tenkyo")
    assert receiving["insurance"]["jido_teate_start"] == "2021-05"
    assert check(catalog, receiving) == []
    receiving["insurance"]["jido_teate_end"] = "2026-13"  # no 13th month
    assert check(catalog, receiving) != []


def test_the_former_name_and_the_alias_have_their_own_furigana_confirmation_flag(catalog: Catalog) -> None:
    """1.1.18: 氏名, 旧氏 and 通称 each have a フリガナ and a フリガナ確認フラグ."""
    alias = v2_sample(catalog, "tsusho")
    assert alias["name"]["alias_name_kana_status"] == "CONFIRMED" and check(catalog, alias) == []
    alias["name"]["alias_name_kana"] = None
    assert check(catalog, alias) == ["R430"]
    former = v2_sample(catalog, "hyojun_tennyu")
    former["name"]["former_family_name_kana_status"] = "UNCONFIRMED"  # a flag with no 旧氏 振り仮名
    assert check(catalog, former) == ["R430"]
