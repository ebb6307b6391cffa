"""validate(): the samples of every kind, XSD issues in words, the Avro path, and the proof
that no personal value ever appears in plain text in an error."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bus.catalog import Catalog
from bus.cli.validate import validate as validate_command
from bus.errors import ValidationFailed
from bus.paths import schemas_dir
from bus.validation import Limits, Validated, validate
from bus.validation.checkdigits import personal_number_check_digit, resident_code_check_digit
from bus.validation.issues import Issue
from bus.validation.safe_xml import parse_xml

SAMPLES = sorted(schemas_dir().glob("*/*/samples/*/*"))
VALID = [p for p in SAMPLES if p.parent.name == "valid"]
INVALID = [p for p in SAMPLES if p.parent.name == "invalid"]
EXPECT = re.compile(rb"<!--\s*expect:\s*(R\d{3})\s*-->")


def sample_id(path: Path) -> str:
    return f"{path.parts[-5]}/{path.name}"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def content_type(path: Path) -> str:
    return "application/avro" if path.suffix == ".avro" else "application/xml"


def failure(raw: bytes, catalog: Catalog, **kwargs: Any) -> list[Issue]:
    kwargs.setdefault("content_type", "application/xml")
    with pytest.raises(ValidationFailed) as info:
        validate(raw, catalog=catalog, **kwargs)
    return info.value.issues


# --- samples ----------------------------------------------------------------------------


def test_every_kind_has_valid_and_invalid_samples(catalog: Catalog) -> None:
    """The parametrized sample tests below cover every kind of the catalog."""
    kinds_with = {p.parts[-5] for p in VALID}, {p.parts[-5] for p in INVALID}
    assert kinds_with[0] == set(catalog.kinds())
    assert kinds_with[1] == set(catalog.kinds())


@pytest.mark.parametrize("path", VALID, ids=sample_id)
def test_valid_sample_passes(path: Path, catalog: Catalog) -> None:
    """Every valid sample (XML and Avro) of every kind validates, as its own kind."""
    kind, version = path.parts[-5], int(path.parts[-4])
    result = validate(path.read_bytes(), content_type=content_type(path), kind=kind, catalog=catalog,
                      version=version)
    assert isinstance(result, Validated)
    assert (result.kind_schema.kind, result.kind_schema.version) == (kind, version)
    assert isinstance(result.record, dict)


@pytest.mark.parametrize("path", INVALID, ids=sample_id)
def test_invalid_sample_is_rejected_with_its_expected_code(path: Path, catalog: Catalog) -> None:
    """Every invalid sample says `<!-- expect: Rnnn -->`; the first issue has that code."""
    raw = path.read_bytes()
    match = EXPECT.search(raw)
    assert match, f"{path} has no <!-- expect: Rnnn --> comment"
    issues = failure(raw, catalog, content_type=content_type(path), kind=path.parts[-5])
    assert issues[0].code == match.group(1).decode(), [str(i) for i in issues]


def test_xml_and_avro_samples_give_the_same_record(catalog: Catalog) -> None:
    """The two encodings of a sample decode to the same record."""
    ks = catalog.get("jumin.idou")
    xml = validate((ks.samples_dir / "valid" / "tennyu.xml").read_bytes(), content_type="application/xml",
                   catalog=catalog)
    avro = validate((ks.samples_dir / "valid" / "tennyu.avro").read_bytes(), content_type="application/avro",
                    kind="jumin.idou", catalog=catalog)
    assert xml.record == avro.record


# --- XSD issues in words ---------------------------------------------------------------------


def test_an_xsd_error_has_path_line_column_value_and_expected(catalog: Catalog) -> None:
    """R300 says where (readable path, line, column), what was there and what was expected."""
    path = catalog.get("jumin.idou").samples_dir / "invalid" / "r300_unknown_reason.xml"
    [issue] = failure(path.read_bytes(), catalog)
    assert issue.code == "R300"
    assert issue.path == "/ResidentChange/change/reason"
    assert (issue.line, issue.column) == (13, 5)
    assert issue.value == "HIKKOSHI"
    assert issue.expected is not None and "TENNYU" in issue.expected and "'" not in issue.expected


def tennyu_xml(catalog: Catalog) -> str:
    return (catalog.get("jumin.idou").samples_dir / "valid" / "tennyu.xml").read_text(encoding="utf-8")


def test_every_xsd_error_is_reported(catalog: Catalog) -> None:
    """Several schema errors give several issues, each at its own line."""
    text = tennyu_xml(catalog).replace("<sex>MALE</sex>", "<sex>OTHER</sex>").replace(
        "<kaigo>false</kaigo>", "<kaigo>no</kaigo>")
    issues = failure(text.encode(), catalog)
    assert [(i.code, i.path) for i in issues] == [
        ("R300", "/ResidentChange/sex"), ("R300", "/ResidentChange/insurance/kaigo")]
    assert issues[1].expected == "true or false"


def test_columns_are_found_in_single_line_documents(catalog: Catalog) -> None:
    """A minified message still gets a column pointing at the element."""
    ks = catalog.get("jumin.idou")
    record = ks.from_xml(parse_xml((ks.samples_dir / "valid" / "tennyu.xml").read_bytes()))
    raw = ks.to_xml(record).replace(b"<sex>MALE</sex>", b"<sex>X</sex>")
    [issue] = failure(raw, catalog)
    line = raw.split(b"\n")[issue.line - 1]  # type: ignore[operator]
    assert issue.column is not None
    assert line.decode()[issue.column - 1:].startswith("<sex>")


def test_schema_failures_stop_before_the_rules(catalog: Catalog) -> None:
    """An XSD error is reported alone: rules are not run on a message that failed the schema."""
    text = tennyu_xml(catalog).replace("131016", "131017").replace("<sex>MALE</sex>", "<sex>X</sex>")
    assert [i.code for i in failure(text.encode(), catalog)] == ["R300"]


def test_all_rule_and_character_issues_are_collected(catalog: Catalog) -> None:
    """After the schema, every rule and character issue is reported, not just the first."""
    text = tennyu_xml(catalog).replace("131016", "131017").replace("<town>神田神保町</town>",
                                                                 "<town>神田\ufffd</town>")
    text = text.replace("<notified_date>2025-04-07<", "<notified_date>2025-04-09<")
    assert [i.code for i in failure(text.encode(), catalog)] == ["R402", "R410", "R442"]


# --- kinds and content types ----------------------------------------------------------------


def test_a_message_of_another_kind_is_r220(catalog: Catalog) -> None:
    """kind= must match the root namespace."""
    raw = tennyu_xml(catalog).encode()
    [issue] = failure(raw, catalog, kind="zei.jumin")
    assert issue.code == "R220"
    assert "jumin.idou" in issue.message


@pytest.mark.parametrize(
    ("raw", "kwargs"),
    [
        (b'<Unknown xmlns="urn:renkei:schema:nope:1"/>', {}),
        (b"<ResidentChange/>", {}),
        (b"\x02", {"content_type": "application/avro"}),
        (b"\x02", {"content_type": "application/avro", "kind": "no.such"}),
        (b"{}", {"content_type": "application/json"}),
    ],
    ids=["unknown-namespace", "no-namespace", "avro-without-kind", "unknown-kind", "json"],
)
def test_unknown_kind_or_content_type_is_r220(raw: bytes, kwargs: dict[str, Any], catalog: Catalog) -> None:
    """Unknown namespaces, kinds and content types are R220."""
    assert [i.code for i in failure(raw, catalog, **kwargs)] == ["R220"]


def test_content_type_parameters_are_ignored(catalog: Catalog) -> None:
    """application/xml; charset=utf-8 is XML."""
    validate(tennyu_xml(catalog).encode(), content_type="application/xml; charset=utf-8", catalog=catalog)


def test_limits_are_passed_through(catalog: Catalog) -> None:
    """A smaller size cap applies to both encodings."""
    raw = tennyu_xml(catalog).encode()
    assert [i.code for i in failure(raw, catalog, limits=Limits(max_bytes=100))] == ["R100"]
    avro = (catalog.get("jumin.idou").samples_dir / "valid" / "tennyu.avro").read_bytes()
    assert [i.code for i in failure(avro, catalog, content_type="application/avro", kind="jumin.idou",
                                    limits=Limits(max_bytes=10))] == ["R100"]


# --- Avro ------------------------------------------------------------------------------------


def avro_record(catalog: Catalog) -> dict[str, Any]:
    ks = catalog.get("jumin.idou")
    return ks.from_avro((ks.samples_dir / "valid" / "tennyu.avro").read_bytes())


def test_avro_facets_are_r301(catalog: Catalog) -> None:
    """Avro does not know patterns: a bad postal code read from Avro is R301, path and masked value."""
    ks = catalog.get("jumin.idou")
    record = avro_record(catalog)
    record["address"]["postal_code"] = "12-34"
    [issue] = failure(ks.to_avro(record), catalog, content_type="application/avro", kind="jumin.idou")
    assert (issue.code, issue.path) == ("R301", "/ResidentChange/address/postal_code")
    assert issue.value == "***** (5 chars)"
    assert issue.expected == "pattern [0-9]{7}"


def test_avro_rules_and_gate_run_after_decoding(catalog: Catalog) -> None:
    """Check digits and the character gate apply to Avro input as well."""
    ks = catalog.get("jumin.idou")
    record = avro_record(catalog)
    record["municipality_code"] = "131017"
    record["name"]["family_name"] = "佐\x00藤"
    codes = [i.code for i in failure(ks.to_avro(record), catalog, content_type="application/avro",
                                     kind="jumin.idou")]
    assert codes == ["R402", "R207"]


# --- the municipality an invalid message names (the intake checks its source against it) ------


def named_municipality(raw: bytes, catalog: Catalog, **kwargs: Any) -> str | None:
    kwargs.setdefault("content_type", "application/xml")
    with pytest.raises(ValidationFailed) as info:
        validate(raw, catalog=catalog, **kwargs)
    return info.value.municipality


def test_an_invalid_message_still_names_its_municipality(catalog: Catalog) -> None:
    ks = catalog.get("jumin.idou")
    raw = tennyu_xml(catalog).encode()
    code = ks.from_xml(parse_xml(raw))["municipality_code"]
    schema_invalid = re.sub(rb"<history_number>\d+</history_number>", b"", raw)
    rules_invalid = re.sub(rb"(<effective_date>)\d{4}", rb"\g<1>2999", raw)  # after the notification
    assert failure(schema_invalid, catalog)[0].code.startswith("R3")
    assert not failure(rules_invalid, catalog)[0].code.startswith("R3")
    assert named_municipality(schema_invalid, catalog) == code
    assert named_municipality(rules_invalid, catalog) == code
    record = avro_record(catalog)
    record["address"]["postal_code"] = "12-34"
    assert named_municipality(ks.to_avro(record), catalog, content_type="application/avro",
                              kind="jumin.idou") == record["municipality_code"]


@pytest.mark.parametrize("code", ["131017", "13101", "13101X", ""], ids=["check-digit", "short", "letter", "empty"])
def test_a_mistyped_municipality_code_names_none(code: str, catalog: Catalog) -> None:
    raw = re.sub(rb"<municipality_code>\d+</municipality_code>",
                 f"<municipality_code>{code}</municipality_code>".encode(), tennyu_xml(catalog).encode())
    assert named_municipality(raw, catalog) is None
    record = avro_record(catalog)
    record["municipality_code"] = code
    assert named_municipality(catalog.get("jumin.idou").to_avro(record), catalog,
                              content_type="application/avro", kind="jumin.idou") is None


@pytest.mark.parametrize("raw", [b"<ResidentChange", b"\x00\x01", b"<x xmlns='urn:nothing'/>"],
                         ids=["not-well-formed", "binary", "unknown-kind"])
def test_a_message_that_does_not_parse_names_no_municipality(raw: bytes, catalog: Catalog) -> None:
    assert named_municipality(raw, catalog) is None


# --- the masking proof ---------------------------------------------------------------------------

#: distinctive personal values; none may appear in any error text
NAME, KANA, TOWN = "鬼瓦権左衛門", "ｵﾆｶﾞﾜｺﾞﾝｻﾞｴﾓﾝ", "ぬらりひょん町"
BAD_NUMBER = "98765432101" + str((personal_number_check_digit("98765432101") + 1) % 10)
BAD_RESIDENT_CODE = "8642097531" + str((resident_code_check_digit("8642097531") + 1) % 10)
SECRETS = [NAME, "権左衛門", KANA, TOWN, "ぬらりひょん", BAD_NUMBER, BAD_RESIDENT_CODE, "8675309",
           "86753098675309867", "1911-13-32", "2030-01-01", "4820315"]


def _personal_schema_errors(text: str) -> str:
    """Schema errors in personal fields, each with a distinctive value."""
    for old, new in [
        ("<family_name>佐藤</family_name>", f"<family_name>{NAME * 20}</family_name>"),
        ("<given_name_kana>ケンイチ</given_name_kana>", f"<given_name_kana>{KANA}</given_name_kana>"),
        ("<address_number>100000012345<", "<address_number>86753098675309867<"),
        ("<personal_number>123456789018</personal_number>", "<personal_number>8675309X</personal_number>"),
        ("<birth_date>1985-06-12</birth_date>", "<birth_date>1911-13-32</birth_date>"),
        ("<town>神田神保町</town>", f"<town>{TOWN * 20}</town>"),
        ("<postal_code>1010051</postal_code>", "<postal_code>4820315-</postal_code>"),
    ]:
        assert old in text
        text = text.replace(old, new)
    return text


def _personal_rule_errors(text: str) -> str:
    """Schema-valid, but rule and character errors in personal fields."""
    for old, new in [
        ("<family_name>佐藤</family_name>", f"<family_name>鬼瓦\ue000{NAME[2:]}</family_name>"),
        ("<given_name>健一</given_name>", "<given_name>権カ\u3099左衛門</given_name>"),
        ("<personal_number>123456789018<", f"<personal_number>{BAD_NUMBER}<"),
        ("<resident_code>30512748232<", f"<resident_code>{BAD_RESIDENT_CODE}<"),
        ("<birth_date>1985-06-12</birth_date>", "<birth_date>2030-01-01</birth_date>"),
        ("<building>神保町ハイツ305号</building>", f"<building>{TOWN}\ufffd</building>"),
    ]:
        assert old in text
        text = text.replace(old, new)
    return text


def _all_text(issues: list[Issue]) -> str:
    return str(ValidationFailed(issues)) + "\n".join(
        str(i) + repr(i) + json.dumps(i.to_dict(), ensure_ascii=False) for i in issues)


@pytest.mark.parametrize(("make", "codes"), [
    (_personal_schema_errors, {"R300"}),
    (_personal_rule_errors, {"R401", "R403", "R410", "R440", "R441", "R442"}),
], ids=["schema-errors", "rule-errors"])
def test_no_personal_value_appears_in_any_error(make: Any, codes: set[str], catalog: Catalog,
                                                tmp_path: Path) -> None:
    """Errors in personal fields (names, kana, numbers, address, birth date) show masked values only:
    in the exception, in every Issue field, and in the CLI's text and JSON output."""
    raw = make(tennyu_xml(catalog)).encode()
    issues = failure(raw, catalog)
    assert {i.code for i in issues} == codes
    assert len(issues) >= 6
    assert all(i.path for i in issues)
    text = _all_text(issues)
    path = tmp_path / "personal.xml"
    path.write_bytes(raw)
    for args in ([str(path)], [str(path), "--json"]):
        result = CliRunner().invoke(validate_command, args)
        assert result.exit_code == 1
        text += result.output
    leaked = [s for s in SECRETS if s in text]
    assert leaked == [], leaked
    assert "chars)" in text  # the masked form is what shows


def test_no_personal_value_appears_in_avro_facet_errors(catalog: Catalog) -> None:
    """R301 issues from Avro input mask personal values too."""
    ks = catalog.get("jumin.idou")
    record = avro_record(catalog)
    record["name"]["family_name"] = NAME * 20
    record["personal_number"] = "8675309X"
    record["address"]["town"] = TOWN * 20
    record["birth_date"] = date(1911, 1, 2)
    issues = failure(ks.to_avro(record), catalog, content_type="application/avro", kind="jumin.idou")
    assert {i.code for i in issues} == {"R301"}
    text = _all_text(issues)
    assert [s for s in [*SECRETS, "8675309X"] if s in text] == []


def test_fields_the_spec_marks_personal_are_masked_too(catalog: Catalog) -> None:
    """portal.shinsei item values are personal in the kind's spec (not by leaf name): masked
    in schema errors and in character-gate errors alike."""
    ks = catalog.get("portal.shinsei")
    text = (ks.samples_dir / "valid" / "jidoteate_nintei.xml").read_text(encoding="utf-8")
    assert "<value>佐藤 結衣</value>" in text
    too_long = text.replace("<value>佐藤 結衣</value>", f"<value>{NAME * 700}</value>")
    garbled = text.replace("<value>佐藤 結衣</value>", f"<value>{NAME}\ufffd</value>")
    for raw, code in ((too_long, "R300"), (garbled, "R442")):
        issues = failure(raw.encode(), catalog)
        assert [i.code for i in issues] == [code]
        assert issues[0].path.startswith("/Shinsei/items")
        assert NAME not in _all_text(issues)


def test_a_flood_of_schema_errors_is_capped(catalog: Catalog) -> None:
    """At most MAX_XSD_ISSUES schema issues, then one issue counting the rest."""
    from bus.validation.validator import MAX_XSD_ISSUES

    ks = catalog.get("portal.shinsei")
    text = (ks.samples_dir / "valid" / "jidoteate_nintei.xml").read_text(encoding="utf-8")
    count = MAX_XSD_ISSUES + 50
    items = "".join(f"<item><key>bad key {i}</key><value>v</value></item>" for i in range(count))
    at = text.index("<items>") + len("<items>")
    issues = failure((text[:at] + items + text[at:]).encode(), catalog)
    assert len(issues) == MAX_XSD_ISSUES + 1
    assert issues[0].path == "/Shinsei/items/item[1]/key"
    assert issues[-1].message.startswith("50 more schema errors")


def test_the_package_exports_what_it_documents() -> None:
    """bus.validation.__all__ is curated and every name in it exists."""
    import bus.validation as package

    assert sorted(package.__all__) == sorted(set(package.__all__))
    for name in package.__all__:
        assert getattr(package, name) is not None
    assert {"validate", "Limits", "Validated", "Issue", "parse_xml", "decode_avro"} <= set(package.__all__)
