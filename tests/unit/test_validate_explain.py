"""`renkei validate --explain`: each schema error as the XSD states it (xmlschema) — the schema's
own path to the rule, the content model or pattern expected — with no personal value shown and
no entity or DTD of the file ever resolved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bus.catalog import Catalog
from bus.cli import main
from bus.paths import schemas_dir
from bus.validation.xsd_explain import explain

SCHEMA_SAMPLES = sorted(schemas_dir().glob("*/*/samples/invalid/r300_*.xml"))
JUMIN = schemas_dir() / "jumin.idou" / "1" / "samples"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.mark.parametrize("sample", SCHEMA_SAMPLES, ids=lambda p: f"{p.parts[-5]}/{p.name}")
def test_every_schema_error_sample_is_explained_from_its_own_xsd(sample: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "--explain", "--json", str(sample)])
    assert result.exit_code == 1
    [document] = json.loads(result.output)["files"]
    kind = sample.parts[-5]
    assert document["explain"], document
    for why in document["explain"]:
        assert why["schema_path"].startswith(f"{kind}.xsd: ")
        assert why["expected"] and why["reason"] and why["path"].startswith("/")


def test_a_missing_element_is_explained_with_the_content_model_and_what_belongs_here() -> None:
    sample = JUMIN / "invalid" / "r300_missing_required_element.xml"
    result = CliRunner().invoke(main, ["validate", "--explain", str(sample)])
    assert result.exit_code == 1
    assert "the schema (jumin.idou.xsd: element ResidentChange / complexType ResidentChange / sequence) " \
           "expects sequence(municipality_code, " in result.output
    assert "; here: birth_date" in result.output


def test_a_pattern_error_names_the_facet_and_its_pattern(catalog: Catalog) -> None:
    [why] = explain((JUMIN / "invalid" / "r300_postal_code_pattern.xml").read_bytes(), catalog)
    assert why.schema_path.endswith("element postal_code / restriction of xs:string / pattern facet")
    assert why.expected == "pattern [0-9]{7}"


def test_no_personal_value_appears_in_an_explanation(catalog: Catalog) -> None:
    valid = next((JUMIN / "valid").glob("*.xml")).read_text(encoding="utf-8")
    start = valid.index("<address_number>") + len("<address_number>")
    end = valid.index("</address_number>")
    secret = "ｶﾞｲｼﾞ0123456789012"
    broken = valid[:start] + secret + valid[end:]
    explained = explain(broken.encode(), catalog)
    assert explained and all(secret not in str(e) and "0123456789012" not in str(e) for e in explained)


def test_a_file_with_an_entity_is_not_expanded_and_not_explained(catalog: Catalog) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b'<ResidentChange xmlns="urn:renkei:schema:jumin.idou:1">&b;</ResidentChange>')
    assert explain(bomb, catalog) == []


def test_a_valid_file_has_nothing_to_explain_and_text_output_stays_one_line() -> None:
    sample = next((JUMIN / "valid").glob("*.xml"))
    result = CliRunner().invoke(main, ["validate", "--explain", str(sample)])
    assert result.exit_code == 0 and result.output.count("\n") == 1
