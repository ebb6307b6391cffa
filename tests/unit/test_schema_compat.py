"""`renkei schemas compat KIND`: a new version of a kind judged against the earlier ones, in
Confluent's terms, for the XSD and the Avro schema, on a copy of the catalog with versions added."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bus.catalog import Catalog
from bus.catalog.compat import compat_report, pairs, verdicts
from bus.cli import main

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
V1 = (SCHEMAS / "zei.jumin" / "1" / "fields.yaml").read_text(encoding="utf-8")
ADDED = '''  - {name: tax_office, type: string, optional: true, maxLength: 20, label_ja: 担当課, description: Office}
'''


def add_version(root: Path, version: int, text: str) -> None:
    directory = root / "zei.jumin" / str(version)
    directory.mkdir(parents=True)
    (directory / "fields.yaml").write_text(text.replace("version: 1", f"version: {version}"), encoding="utf-8")


@pytest.fixture
def catalog_root(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, root)
    shutil.rmtree(root / "zei.jumin" / "2")  # the shipped preview (jumin.idou v2's items): these tests add their own
    return root


def test_an_optional_field_added_is_backward_for_both_and_forward_for_avro_only(catalog_root: Path) -> None:
    add_version(catalog_root, 2, V1 + ADDED)
    catalog = Catalog.load(catalog_root)
    found = list(pairs(catalog, "zei.jumin"))
    assert verdicts(found, "avro")["FULL"] is True
    xsd = verdicts(found, "xsd")
    assert (xsd["BACKWARD"], xsd["FORWARD"], xsd["FULL"]) == (True, False, False)
    assert [str(f) for f in found[0].forward] == [
        "xsd: /tax_office: written by the other version, unknown here (an XSD sequence refuses it)"]


def test_a_narrower_facet_and_a_new_required_field_break_backward(catalog_root: Path) -> None:
    add_version(catalog_root, 2, V1 + ADDED)
    narrower = V1.replace("{name: family_name, type: string, minLength: 1, maxLength: 100",
                          "{name: family_name, type: string, minLength: 1, maxLength: 50")
    add_version(catalog_root, 3, narrower + ADDED.replace("optional: true, ", ""))
    catalog = Catalog.load(catalog_root)
    found = list(pairs(catalog, "zei.jumin"))
    assert [(p.new, p.old) for p in found] == [(2, 1), (3, 1), (3, 2)]
    avro = verdicts(found, "avro")
    assert (avro["BACKWARD"], avro["BACKWARD_TRANSITIVE"]) == (False, False)
    text, holds = compat_report(catalog, "zei.jumin")
    assert not holds
    assert "v3 backward v2: avro: /name/family_name: maxLength 100 there, 50 here: narrower" in text
    assert "v3 backward v1: avro: /tax_office: required here, never written by the other version" in text


def test_the_command_lists_the_routes_and_projections_and_exits_by_the_verdict(catalog_root: Path) -> None:
    runner = CliRunner()
    one = runner.invoke(main, ["schemas", "compat", "zei.jumin", "--root", str(catalog_root)])
    assert one.exit_code == 0, one.output
    assert "one version only" in one.output and "projections to zei.jumin: zei-all-changes → zei" in one.output
    add_version(catalog_root, 2, V1 + ADDED)
    two = runner.invoke(main, ["schemas", "compat", "zei.jumin", "--root", str(catalog_root)])
    assert two.exit_code == 1
    assert "xsd   BACKWARD yes  FORWARD NO" in two.output
    unknown = runner.invoke(main, ["schemas", "compat", "zei.juminn", "--root", str(catalog_root)])
    assert unknown.exit_code == 2 and "unknown kind 'zei.juminn'" in unknown.output
