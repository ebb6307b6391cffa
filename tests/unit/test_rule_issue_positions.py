"""Rule and character issues (R4xx) name the line and column of their element, as schema
errors (R300) do: in `renkei validate`'s text and in its `--json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bus.catalog import Catalog
from bus.cli import main
from bus.errors import ValidationFailed
from bus.paths import schemas_dir
from bus.validation.validator import XML, validate

RULE_SAMPLES = sorted(schemas_dir().glob("*/*/samples/invalid/r4*.xml"))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def test_there_are_rule_samples_to_check() -> None:
    assert len(RULE_SAMPLES) >= 9


@pytest.mark.parametrize("sample", RULE_SAMPLES, ids=lambda p: f"{p.parts[-5]}/{p.name}")
def test_every_rule_issue_of_a_sample_has_a_line_and_a_column(sample: Path, catalog: Catalog) -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate(sample.read_bytes(), content_type=XML, catalog=catalog)
    issues = [i for i in failed.value.issues if i.code.startswith("R4")]
    assert issues
    for issue in issues:
        assert issue.line is not None and issue.column is not None, issue
        line = sample.read_text(encoding="utf-8").splitlines()[issue.line - 1]
        assert line[issue.column - 1] == "<"  # the start tag of the element (or of its parent)


def test_a_check_digit_issue_points_at_its_element_in_text_and_json(tmp_path: Path) -> None:
    sample = next(p for p in RULE_SAMPLES if p.name.startswith("r401"))
    text = sample.read_text(encoding="utf-8").splitlines()
    line = next(n for n, t in enumerate(text, 1) if "<personal_number>" in t)
    column = text[line - 1].index("<personal_number>") + 1
    plain = CliRunner().invoke(main, ["validate", str(sample)])
    assert f"{sample}:{line}:{column}: R401 " in plain.output
    document = json.loads(CliRunner().invoke(main, ["validate", "--json", str(sample)]).output)
    [issue] = document["files"][0]["issues"]
    assert (issue["code"], issue["line"], issue["column"]) == ("R401", line, column)


def test_an_issue_inside_a_list_item_points_at_that_item(catalog: Catalog) -> None:
    sample = schemas_dir() / "portal.shinsei/1/samples/valid/jidoteate_nintei.xml"
    raw = sample.read_text(encoding="utf-8").replace("みずほ銀行", "み\ue000ずほ銀行")
    with pytest.raises(ValidationFailed) as failed:
        validate(raw.encode(), content_type=XML, catalog=catalog)
    [issue] = failed.value.issues
    lines = raw.splitlines()
    assert issue.code == "R440" and issue.path.endswith("items[2]/value")
    assert "\ue000" in lines[issue.line - 1] and issue.column == lines[issue.line - 1].index("<value>") + 1
