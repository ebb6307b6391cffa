"""Rules the schema cannot say (R401–R430) and the character gate (R440–R442, R207 controls).

Each test starts from a valid jumin.idou sample, breaks one thing, and expects exactly the
issue of the rule in question (docs/error-codes.md lists them all).
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from bus.catalog import Catalog
from bus.validation.chargate import check_characters
from bus.validation.rules import ISO_3166_ALPHA2, rules_for
from bus.validation.safe_xml import parse_xml


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def sample(catalog: Catalog, name: str, kind: str = "jumin.idou") -> dict[str, Any]:
    ks = catalog.get(kind)
    return ks.from_xml(parse_xml((ks.samples_dir / "valid" / f"{name}.xml").read_bytes()))


def issues(catalog: Catalog, record: dict[str, Any], kind: str = "jumin.idou") -> list[tuple[str, str]]:
    found = rules_for(catalog.get(kind), catalog.codelists).check(record)
    return [(i.code, i.path) for i in found]


@pytest.fixture
def tennyu(catalog: Catalog) -> dict[str, Any]:
    return sample(catalog, "tennyu")


@pytest.mark.parametrize("name", ["tennyu", "tenshutsu", "kokugai_tenshutsu", "kokugai_tennyu", "shussei",
                                  "shibou", "torikeshi", "tsusho", "kojin_bango_henko", "setai_bunri"])
def test_valid_samples_break_no_rule(catalog: Catalog, name: str) -> None:
    """Every valid jumin.idou sample passes every rule."""
    assert issues(catalog, sample(catalog, name)) == []


# --- R401–R403 check digits --------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "bad", "code"),
    [("personal_number", "123456789019", "R401"), ("municipality_code", "131017", "R402"),
     ("resident_code", "30512748231", "R403")],
)
def test_a_wrong_check_digit_is_reported_with_its_code(
    catalog: Catalog, tennyu: dict[str, Any], field: str, bad: str, code: str
) -> None:
    """R401 個人番号, R402 地方公共団体コード, R403 住民票コード."""
    tennyu[field] = bad
    assert issues(catalog, tennyu) == [(code, f"/ResidentChange/{field}")]


def test_an_absent_optional_number_is_not_checked(catalog: Catalog, tennyu: dict[str, Any]) -> None:
    """personal_number and resident_code are optional: absent is fine."""
    tennyu["personal_number"] = tennyu["resident_code"] = None
    assert issues(catalog, tennyu) == []


def test_check_digit_issues_mask_personal_values(catalog: Catalog, tennyu: dict[str, Any]) -> None:
    """The wrong 個人番号 is shown masked, the municipality code (public) in clear."""
    tennyu["personal_number"] = "987654321099"
    tennyu["municipality_code"] = "131017"
    found = rules_for(catalog.get("jumin.idou"), catalog.codelists).check(tennyu)
    assert [i.value for i in found] == ["131017", "************ (12 chars)"]
    assert "987654321099" not in " ".join(str(i) for i in found)


def test_check_digits_apply_to_projections_too(catalog: Catalog) -> None:
    """A projection carrying municipality_code is checked the same way."""
    record = sample(catalog, "tennyu", kind="zei.jumin")
    record["municipality_code"] = "131010"
    assert issues(catalog, record, kind="zei.jumin") == [("R402", "/ResidentNotice/municipality_code")]


# --- R410 date order ------------------------------------------------------------------------


def test_processed_before_effective_is_r410(catalog: Catalog, tennyu: dict[str, Any]) -> None:
    """処理日 before 異動日 is wrong for 転入."""
    tennyu["change"]["processed_date"] = date(2025, 3, 31)
    tennyu["change"]["notified_date"] = date(2025, 3, 30)
    assert issues(catalog, tennyu) == [("R410", "/ResidentChange/change/processed_date")]


@pytest.mark.parametrize("name", ["tenshutsu", "kokugai_tenshutsu"])
def test_move_out_may_be_processed_in_advance(catalog: Catalog, name: str) -> None:
    """転出 / 国外転出 may be notified and processed before the move (転出予定)."""
    record = sample(catalog, name)
    record["change"]["processed_date"] = date(2000, 1, 1)
    record["change"]["notified_date"] = date(2000, 1, 1)
    assert issues(catalog, record) == []


def test_notified_after_processed_is_r410(catalog: Catalog, tennyu: dict[str, Any]) -> None:
    """届出日 after 処理日 cannot be."""
    tennyu["change"]["notified_date"] = date(2025, 5, 1)
    assert issues(catalog, tennyu) == [("R410", "/ResidentChange/change/notified_date")]


def test_born_after_the_change_is_r410_and_masked(catalog: Catalog, tennyu: dict[str, Any]) -> None:
    """生年月日 after 異動日 is wrong; the birth date is personal and shown masked."""
    tennyu["birth_date"] = date(2026, 1, 2)
    found = rules_for(catalog.get("jumin.idou"), catalog.codelists).check(tennyu)
    assert [(i.code, i.path) for i in found] == [("R410", "/ResidentChange/birth_date")]
    assert "2026-01-02" not in str(found[0])


def test_birth_is_effective_on_the_birth_date(catalog: Catalog) -> None:
    """出生: 異動日 is the birth date."""
    record = sample(catalog, "shussei")
    record["birth_date"] = date.fromordinal(record["change"]["effective_date"].toordinal() - 1)
    assert issues(catalog, record) == [("R410", "/ResidentChange/change/effective_date")]


# --- R420 code lists ------------------------------------------------------------------------


def test_an_unknown_country_code_is_r420(catalog: Catalog) -> None:
    """nationality and moved_out_country are ISO 3166-1 alpha-2 codes."""
    record = sample(catalog, "kokugai_tenshutsu")
    record["moved_out_country"] = "QQ"
    assert issues(catalog, record) == [("R420", "/ResidentChange/moved_out_country")]
    record = sample(catalog, "tsusho")
    record["nationality"] = "ZZ"
    assert issues(catalog, record) == [("R420", "/ResidentChange/nationality")]


def test_the_country_list_is_iso_3166_plus_stateless() -> None:
    """249 ISO codes plus XX (無国籍 / unknown)."""
    assert len(ISO_3166_ALPHA2) == 250
    assert {"JP", "US", "CN", "KR", "VN", "XX"} <= ISO_3166_ALPHA2


# --- R430 cross-field rules --------------------------------------------------------------------


def _set(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split("/")
    target = record
    for part in parents:
        target = target[part]
    target[leaf] = value


CROSS_FIELD = [
    ("tenshutsu", {"moved_out_to": None}, "moved_out_to"),
    ("kokugai_tenshutsu", {"moved_out_country": None}, "moved_out_country"),
    ("kokugai_tenshutsu", {"moved_out_country": "JP"}, "moved_out_country"),
    ("tennyu", {"previous_address": None}, "previous_address"),
    ("torikeshi", {"change/cancelled_history_number": None}, "change/cancelled_history_number"),
    ("torikeshi", {"change/cancelled_history_number": 99}, "change/cancelled_history_number"),
    ("tennyu", {"change/cancelled_history_number": 1}, "change/cancelled_history_number"),
    ("kojin_bango_henko", {"personal_number": None}, "personal_number"),
    ("tennyu", {"change/reason": "JUMINHYO_CODE_HENKO", "resident_code": None}, "resident_code"),
    ("shibou", {"resident_status": "RESIDENT"}, "resident_status"),
    ("tennyu", {"resident_status": "REMOVED"}, "resident_status"),
    ("tsusho", {"resident_type": "JAPANESE", "nationality": None, "name/alias_name": None,
                "name/alias_name_kana": None}, "resident_type"),
    ("tsusho", {"nationality": None}, "nationality"),
    ("tsusho", {"nationality": "JP"}, "nationality"),
    ("tennyu", {"nationality": "US"}, "nationality"),
    ("tennyu", {"name/alias_name": "ジョン"}, "name/alias_name"),
    ("tennyu", {"name/former_family_name_kana": "タナカ"}, "name/former_family_name_kana"),
    ("tsusho", {"name/alias_name": None, "change/reason": "KEIBI_SHUSEI"}, "name/alias_name_kana"),
    ("tennyu", {"insurance/kokuho_household": False}, "insurance/kokuho_household"),
    ("tennyu", {"insurance/koki": True}, "insurance/koki"),
]


@pytest.mark.parametrize(("name", "changes", "path"), CROSS_FIELD,
                         ids=[f"{n}-{'-'.join(c)}" for n, c, _ in CROSS_FIELD])
def test_cross_field_rule_is_r430(catalog: Catalog, name: str, changes: dict[str, Any], path: str) -> None:
    """Each cross-field rule of docs/error-codes.md catches its case, at the right field."""
    record = sample(catalog, name)
    for field, value in changes.items():
        _set(record, field, value)
    assert issues(catalog, record) == [("R430", f"/ResidentChange/{path}")]


def test_projections_are_not_asked_for_fields_they_do_not_have(catalog: Catalog) -> None:
    """A projection without personal_number in the record is not asked for it on 個人番号変更."""
    record = sample(catalog, "tennyu", kind="zei.jumin")
    record["change"]["reason"] = "KOJIN_BANGO_HENKO"
    record["previous_address"] = None
    record["personal_number"] = None
    assert issues(catalog, record, kind="zei.jumin") == []


def test_every_rule_issue_is_collected(catalog: Catalog, tennyu: dict[str, Any]) -> None:
    """Rules do not stop at the first problem."""
    tennyu["municipality_code"] = "131017"
    tennyu["change"]["notified_date"] = date(2025, 5, 1)
    tennyu["previous_address"] = None
    assert [c for c, _ in issues(catalog, tennyu)] == ["R402", "R430", "R410"]


# --- the character gate ----------------------------------------------------------------------


def gate(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i.code, i.path) for i in check_characters(record, root="ResidentChange")]


def test_a_clean_record_passes_the_gate(tennyu: dict[str, Any]) -> None:
    """Kanji, kana, digits and full-width spaces pass."""
    tennyu["name"]["given_name_kana"] = "ケン\u3000イチ"
    assert gate(tennyu) == []


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        ("name/family_name", "\ue000藤", "R440"),
        ("name/family_name", "佐\U000f0001", "R440"),
        ("name/family_name", "佐\U00100001", "R440"),
        ("name/given_name_kana", "カ\u3099ンイチ", "R441"),
        ("address/town", "神田\ufffd", "R442"),
        ("address/town", "ã\x81\x82", "R442"),
        ("address/town", "Ã©", "R442"),
        ("address/town", "縺ゅ繧", "R442"),
        ("name/family_name_kana", "ｻﾄｳ", "R442"),
        ("name/family_name_kana", "さとう", "R442"),
        ("name/family_name_kana", "SATO", "R442"),
        ("address/town", "神田\x00", "R207"),
        ("address/city", "千代田\x1b区", "R207"),
    ],
    ids=["pua-bmp", "pua-plane15", "pua-plane16", "not-nfc", "replacement-char", "utf8-as-latin1",
         "utf8-as-cp1252", "utf8-as-cp932", "half-width-kana", "hiragana-in-kana", "latin-in-kana", "nul",
         "escape"],
)
def test_the_gate_flags_each_character_problem(
    tennyu: dict[str, Any], path: str, value: str, code: str
) -> None:
    """外字 R440, non-NFC R441, mojibake and non-katakana kana R442, control characters R207."""
    _set(tennyu, path, value)
    assert gate(tennyu) == [(code, f"/ResidentChange/{path}")]


def test_gate_issues_mask_personal_values_and_name_the_code_point(tennyu: dict[str, Any]) -> None:
    """The 外字 is named by code point; the personal name itself is masked."""
    tennyu["name"]["family_name"] = "鬼瓦\ue8a1"
    [issue] = check_characters(tennyu, root="ResidentChange")
    assert "U+E8A1" in issue.message
    assert "鬼瓦" not in str(issue)
    assert issue.value == "*** (3 chars)"


def test_gate_escapes_control_characters_in_public_values(tennyu: dict[str, Any]) -> None:
    """A public value with a control character is shown escaped, not raw."""
    tennyu["address"]["city"] = "千代田\x1b区"
    [issue] = check_characters(tennyu, root="ResidentChange")
    assert issue.value == "千代田\\x1b区"


def test_legitimate_latin_letters_are_not_mojibake(tennyu: dict[str, Any]) -> None:
    """Café or Zoë in a building name is not taken for 文字化け."""
    tennyu["address"]["building"] = "Café Zoë 3F"
    assert gate(tennyu) == []


def test_the_gate_looks_into_lists(catalog: Catalog) -> None:
    """Strings inside lists (portal.shinsei items) are checked too."""
    record = copy.deepcopy(sample(catalog, "jidoteate_nintei", kind="portal.shinsei"))
    lists = [k for k, v in record.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
    assert lists
    first = record[lists[0]][0]
    key = next(k for k, v in first.items() if isinstance(v, str))
    first[key] = "\ue000"
    found = check_characters(record, root="Shinsei")
    assert [(i.code, i.path) for i in found] == [("R440", f"/Shinsei/{lists[0]}[0]/{key}")]
