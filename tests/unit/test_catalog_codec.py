"""Record codecs, facet checks, code lists, field-spec errors and data paths of the catalog."""

from __future__ import annotations

import copy
import re
import shutil
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from bus.catalog import Catalog, CodeLists
from bus.catalog.spec import load_spec
from bus.errors import ConfigError
from bus.paths import routes_dir, schemas_dir

CATALOG = Catalog.load()
IDOU = CATALOG.get("jumin.idou")
NS = "{urn:renkei:schema:jumin.idou:1}"


def _sample(kind: str, name: str) -> dict[str, Any]:
    ks = CATALOG.get(kind)
    return ks.from_xml(etree.parse(str(ks.samples_dir / "valid" / f"{name}.xml")).getroot())


# --- code lists ----------------------------------------------------------------------------


def test_code_lists_match_the_data_model() -> None:
    cl = CodeLists.load()
    assert cl.names() == ["ChangeReason", "Relationship", "Sex", "ResidentType", "ResidentStatus",
                          "PensionCategory", "ChangeReason2", "ResidentStatus2", "PensionCategory2",
                          "ForeignResidentCategory", "FuriganaStatus", "ShienAction"]
    reasons = cl.symbols("ChangeReason")
    assert len(reasons) == 22 and reasons[0] == "TENNYU" and reasons[-1] == "TORIKESHI"
    groups = [cl.group(r) for r in reasons]
    assert (groups.count("increase"), groups.count("decrease"), groups.count("correction")) == (4, 4, 14)
    assert cl.group("TENSHUTSU") == "decrease" and cl.group("TENKYO") == "correction"
    assert cl.label("ChangeReason", "KOKUGAI_TENSHUTSU") == "国外転出"
    assert cl.numeric("ChangeReason", "TENSHUTSU") == "21"
    assert cl.from_numeric("Sex", "02") == "FEMALE"
    assert cl.symbols("Sex") == ("MALE", "FEMALE")
    assert cl.symbols("PensionCategory") == ("NONE", "DAI1GO", "DAI2GO", "DAI3GO")
    assert len(cl.symbols("Relationship")) == 21 and cl.label("Relationship", "KO_NO_KO") == "子の子"
    for name in cl.names():
        for code in cl.get(name).codes:
            assert len(code.code) == 2 and code.code.isdigit() and code.label_ja and code.description


def test_unknown_code_list_is_a_config_error_and_unknown_symbol_a_key_error() -> None:
    cl = CATALOG.codelists
    with pytest.raises(ConfigError, match="ChangeReason"):
        cl.symbols("Reason")
    with pytest.raises(KeyError, match="HIKKOSHI"):
        cl.group("HIKKOSHI")
    with pytest.raises(KeyError):
        cl.label("Sex", "OTHER")


def test_a_code_list_without_numeric_codes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "codelists.yaml"
    path.write_text("Sex:\n  codes:\n    - {symbol: MALE, code: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="2 digits"):
        CodeLists.load(path)


# --- XML codec -----------------------------------------------------------------------------


def test_from_xml_gives_typed_values_and_none_for_missing_optionals() -> None:
    record = _sample("jumin.idou", "tennyu")
    assert list(record) == [f.name for f in IDOU.fields]
    assert record["history_number"] == 1 and isinstance(record["history_number"], int)
    assert record["birth_date"] == date(1985, 6, 12)
    assert record["change"]["cancelled_history_number"] is None
    assert record["moved_out_to"] is None and record["nationality"] is None
    assert record["insurance"]["kokuho"] is True and record["insurance"]["kaigo"] is False
    assert record["previous_address"]["building"] is None


def test_to_xml_writes_spec_order_omits_none_and_escapes_text() -> None:
    record = _sample("jumin.idou", "tennyu")
    shuffled = dict(reversed(list(record.items())))
    shuffled["address"] = {**record["address"], "building": "A&B <棟> 305"}
    xml = IDOU.to_xml(shuffled)
    root = etree.fromstring(xml)
    IDOU.xml_schema.assertValid(root)
    names = [etree.QName(c).localname for c in root]
    assert names[:3] == ["municipality_code", "address_number", "history_number"]
    assert root.find(f"{NS}moved_out_to") is None
    assert root.findtext(f"{NS}address/{NS}building") == "A&B <棟> 305"
    assert IDOU.from_xml(root)["address"]["building"] == "A&B <棟> 305"


def test_to_xml_refuses_text_xml_cannot_carry_and_wrong_types() -> None:
    record = _sample("jumin.idou", "tennyu")
    broken = copy.deepcopy(record)
    broken["name"]["family_name"] = "佐\x00藤"
    with pytest.raises(ValueError, match="XML cannot carry"):
        IDOU.to_xml(broken)
    with pytest.raises(TypeError, match="int"):
        IDOU.to_xml({**record, "history_number": "1"})
    with pytest.raises(TypeError, match="date"):
        IDOU.to_xml({**record, "birth_date": "1985-06-12"})


def test_datetimes_are_written_in_japan_standard_time_with_milliseconds() -> None:
    ks = CATALOG.get("portal.oshirase")
    record = _sample("portal.oshirase", "tennyu_kosodate")
    utc = record["published_at"].astimezone(UTC)
    for value in (utc, utc.replace(tzinfo=None)):  # a naive datetime is UTC, as in fastavro
        xml = ks.to_xml({**record, "published_at": value})
        assert b"<published_at>2025-04-08T09:00:00.000+09:00</published_at>" in xml
    decoded = ks.from_avro(ks.to_avro(record))["published_at"]
    assert decoded == record["published_at"] and decoded.utcoffset() == timedelta(0)
    plus_five = datetime(2025, 4, 8, 5, 0, tzinfo=timezone(timedelta(hours=5)))
    assert b"2025-04-08T09:00:00.000+09:00" in ks.to_xml({**record, "published_at": plus_five})


def test_a_list_round_trips_as_items() -> None:
    ks = CATALOG.get("portal.shinsei")
    record = _sample("portal.shinsei", "jidoteate_nintei")
    assert record["items"][0] == {"key": "child.1.name", "value": "佐藤 結衣"}
    assert record["items"][-1] == {"key": "remarks", "value": ""}
    empty = {**record, "items": []}
    root = etree.fromstring(ks.to_xml(empty))
    ks.xml_schema.assertValid(root)
    assert ks.from_xml(root)["items"] == []


def test_from_xml_rejects_another_kind_and_unknown_elements() -> None:
    other = etree.parse(str(CATALOG.get("zei.jumin").samples_dir / "valid" / "tennyu.xml")).getroot()
    with pytest.raises(ValueError, match="ResidentChange"):
        IDOU.from_xml(other)
    root = etree.fromstring(IDOU.to_xml(_sample("jumin.idou", "tennyu")))
    etree.SubElement(root, f"{NS}shoe_size").text = "27"
    with pytest.raises(ValueError, match="shoe_size"):
        IDOU.from_xml(root)


# --- facets (Avro input) -------------------------------------------------------------------


def test_check_facets_reports_pattern_length_range_and_missing_values() -> None:
    record = copy.deepcopy(_sample("jumin.idou", "tenkyo"))
    assert IDOU.check_facets(record) == []
    record["personal_number"] = "12345678901"
    record["history_number"] = 0
    record["name"]["family_name"] = ""
    record["address"]["postal_code"] = "223-0062"
    record["name"]["given_name_kana"] = "しょうた"
    record["change"]["processed_date"] = None
    record["sex"] = "OTHER"
    record["insurance"]["kokuho"] = "yes"
    assert sorted(IDOU.check_facets(record)) == sorted([
        ("personal_number", "pattern", "[0-9]{12}"),
        ("history_number", "minInclusive", "1"),
        ("name/family_name", "minLength", "1"),
        ("address/postal_code", "pattern", "[0-9]{7}"),
        ("name/given_name_kana", "pattern", "[ァ-ヺー・\u3000\u3099\u309a]+"),
        ("change/processed_date", "required", "a value"),
        ("sex", "enumeration", "Sex"),
        ("insurance/kokuho", "type", "boolean"),
    ])


def test_check_facets_names_list_entries_by_index() -> None:
    ks = CATALOG.get("portal.shinsei")
    record = copy.deepcopy(_sample("portal.shinsei", "jidoteate_nintei"))
    record["items"][1]["key"] = "child 1"
    record["items"][2]["value"] = "x" * 4001
    assert ks.check_facets(record) == [
        ("items[1]/key", "pattern", "[A-Za-z0-9_.\\-]{1,64}"),
        ("items[2]/value", "maxLength", "4000"),
    ]


# --- field specs ---------------------------------------------------------------------------


def _spec(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "demo.kind" / "1" / "fields.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("kind: demo.kind\nversion: 1\nrecord: Demo\n" + body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("  - {name: a, type: float}\n", "unknown type 'float'"),
        ("  - {name: a, type: 'enum:Colour'}\n", "unknown code list 'Colour'"),
        ("  - {name: a, type: 'record:Missing'}\n", "unknown record type 'Missing'"),
        ("  - {name: a, type: int, pattern: '[0-9]+'}\n", "do not apply to int"),
        ("  - {name: a, type: string, pattern: '\\d+'}\n", "without \\\\d"),
        ("  - {name: a, type: string, colour: red}\n", "unknown keys colour"),
        ("  - {name: a, type: string}\n  - {name: a, type: int}\n", "duplicate fields a"),
        ("  - {name: CamelCase, type: string}\n", "snake_case"),
    ],
)
def test_a_wrong_field_spec_is_a_config_error_naming_the_file(
    tmp_path: Path, fields: str, message: str
) -> None:
    path = _spec(tmp_path, "fields:\n" + fields)
    with pytest.raises(ConfigError, match=message) as caught:
        load_spec(path, CATALOG.codelists)
    assert str(path) in str(caught.value)


def test_a_spec_must_live_in_its_kind_and_version_directory(tmp_path: Path) -> None:
    path = _spec(tmp_path, "fields:\n  - {name: a, type: string}\n")
    path.write_text(path.read_text(encoding="utf-8").replace("version: 1", "version: 2"), encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape("demo.kind/2/fields.yaml")):
        load_spec(path, CATALOG.codelists)


# --- data paths ----------------------------------------------------------------------------


def test_data_dirs_are_the_checkout_dirs_unless_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RENKEI_SCHEMAS_DIR", raising=False)
    monkeypatch.delenv("RENKEI_ROUTES_DIR", raising=False)
    checkout = Path(__file__).resolve().parents[2]
    assert schemas_dir() == checkout / "schemas" and routes_dir() == checkout / "routes"
    shutil.copytree(schemas_dir(), tmp_path / "schemas")
    monkeypatch.setenv("RENKEI_SCHEMAS_DIR", str(tmp_path / "schemas"))
    monkeypatch.setenv("RENKEI_ROUTES_DIR", str(tmp_path / "routes"))
    assert schemas_dir() == tmp_path / "schemas" and routes_dir() == tmp_path / "routes"
    assert Catalog.load().get("jumin.idou").xsd_path.is_relative_to(tmp_path)
