"""The schema catalog: every kind loads, samples validate and round-trip, generated files
are current, and XSD, Avro and code lists agree.
(The generated XSD and Avro are compared field by field in test_catalog_schemas.py.)
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from bus.catalog import Catalog, KindSchema
from bus.catalog.generate import build
from bus.cli.schemas import schemas
from bus.errors import ConfigError
from bus.paths import schemas_dir

ONLY_V1 = {"portal.oshirase", "portal.shinsei", "togo.oshirase", "pittari.shinsei", "jumin.shien",
           "shien.jumin"}  # the others: a v2 preview
KINDS = {
    "jumin.idou", "zei.jumin", "kokuho.jumin", "kaigo.jumin", "koki.jumin", "nenkin.jumin", "fukushi.jumin",
    "chukan.fukuhon", "portal.oshirase", "portal.shinsei", "togo.jumin",
    "togo.oshirase", "pittari.shinsei", "senkyo.jumin", "shugaku.jumin", "jumin.shien", "shien.jumin",
}
CATALOG = Catalog.load()
VALID = [(ks.kind, p) for ks in CATALOG for p in sorted((ks.samples_dir / "valid").glob("*.xml"))]
INVALID = [(ks.kind, p) for ks in CATALOG for p in sorted((ks.samples_dir / "invalid").glob("*.xml"))]
AVRO = [(ks.kind, p) for ks in CATALOG for p in sorted((ks.samples_dir / "valid").glob("*.avro"))]
ERROR_CODES = {"R300", "R401", "R402", "R403", "R410", "R420", "R430", "R440", "R441", "R442"}


def _ids(cases: list[tuple[str, Path]]) -> list[str]:
    return [f"{kind}/{path.name}" for kind, path in cases]


def _parse(path: Path) -> etree._Element:
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, remove_blank_text=True, remove_comments=True
    )
    return etree.parse(str(path), parser).getroot()


# --- catalog -------------------------------------------------------------------------------


def test_every_kind_loads_with_its_generated_files() -> None:
    """All seventeen kinds are in the catalog at version 1 (the resident kinds also at the preview
    version 2, never the default), with an XSD and Avro schema that compile."""
    assert set(CATALOG.kinds()) == KINDS
    for kind in KINDS:
        ks = CATALOG.get(kind)
        assert ks.version == 1 and CATALOG.versions(kind) == ([1] if kind in ONLY_V1 else [1, 2])
        assert ks.namespace == f"urn:renkei:schema:{kind}:1"
        assert ks.xsd_path == schemas_dir() / kind / "1" / f"{kind}.xsd" and ks.avsc_path.is_file()
        assert isinstance(ks.xml_schema, etree.XMLSchema)
        assert isinstance(ks, KindSchema)
        assert ks.avro_schema["name"] == f"renkei.{kind.replace('.', '_')}.v1.{ks.root_element}"
        assert CATALOG.get(kind, 1) is ks and CATALOG.by_namespace(ks.namespace) is ks


def test_root_elements_follow_the_data_model() -> None:
    roots = {kind: CATALOG.get(kind).root_element for kind in KINDS}
    assert roots.pop("jumin.idou") == "ResidentChange"
    assert roots.pop("chukan.fukuhon") == "FukuhonUpdate"
    assert roots.pop("portal.oshirase") == "Oshirase"
    assert roots.pop("portal.shinsei") == "Shinsei"
    assert roots.pop("togo.jumin") == "AtenaChange"
    assert roots.pop("togo.oshirase") == "OshiraseRequest"
    assert roots.pop("pittari.shinsei") == "PittariShinsei"
    assert roots.pop("jumin.shien") == "SupportMeasureChange"
    assert roots.pop("shien.jumin") == "SupportMeasureNotice"
    assert set(roots.values()) == {"ResidentNotice"}


def test_an_unknown_kind_is_a_config_error_naming_the_known_kinds() -> None:
    with pytest.raises(ConfigError) as caught:
        CATALOG.get("jumin.idoo")
    assert "jumin.idoo" in str(caught.value)
    for kind in KINDS:
        assert kind in str(caught.value)
    with pytest.raises(ConfigError, match="known versions: 1, 2"):
        CATALOG.get("jumin.idou", 3)
    with pytest.raises(ConfigError, match=re.escape("urn:renkei:schema:jumin.idou:1")):
        CATALOG.by_namespace("urn:renkei:schema:nothing:1")


def test_a_directory_without_a_catalog_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RENKEI_SCHEMAS_DIR"):
        Catalog.load(root=tmp_path)


# --- samples -------------------------------------------------------------------------------


def test_every_kind_has_valid_invalid_and_avro_samples() -> None:
    for kind in KINDS:
        assert any(k == kind for k, _ in VALID), kind
        assert any(k == kind for k, _ in INVALID), kind
        assert any(k == kind for k, _ in AVRO), kind


def test_resident_change_samples_cover_every_group_of_change_reasons() -> None:
    ks = CATALOG.get("jumin.idou")
    reasons = {ks.from_xml(_parse(p))["change"]["reason"] for k, p in VALID
               if k == "jumin.idou" and p.parts[-4] == "1"}
    required = {"TENNYU", "SHUSSEI", "TENSHUTSU", "KOKUGAI_TENSHUTSU", "SHIBOU", "TENKYO", "SHIMEI_HENKO",
                "SETAI_BUNRI", "KOJIN_BANGO_HENKO", "TORIKESHI"}
    assert required <= reasons
    assert {CATALOG.codelists.group(r) for r in reasons} == {"increase", "decrease", "correction"}


@pytest.mark.parametrize(("kind", "path"), VALID, ids=_ids(VALID))
def test_valid_sample_validates_and_round_trips_through_avro(kind: str, path: Path) -> None:
    """XML → dict → Avro → dict → XML gives back the same record and the same XML."""
    ks = CATALOG.get(kind, int(path.parts[-4]))
    root = _parse(path)
    ks.xml_schema.assertValid(root)
    record = ks.from_xml(root)
    again = ks.from_avro(ks.to_avro(record))
    assert again == record
    xml = ks.to_xml(again)
    assert xml == ks.to_xml(record)
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    reparsed = etree.fromstring(xml)
    ks.xml_schema.assertValid(reparsed)
    assert etree.tostring(reparsed, method="c14n") == etree.tostring(root, method="c14n")
    assert ks.check_facets(record) == []


@pytest.mark.parametrize(("kind", "path"), AVRO, ids=_ids(AVRO))
def test_avro_sample_decodes_to_its_xml_twin(kind: str, path: Path) -> None:
    ks = CATALOG.get(kind, int(path.parts[-4]))
    assert ks.from_avro(path.read_bytes()) == ks.from_xml(_parse(path.with_suffix(".xml")))


@pytest.mark.parametrize(("kind", "path"), INVALID, ids=_ids(INVALID))
def test_invalid_sample_names_its_error_and_fails_at_the_right_step(kind: str, path: Path) -> None:
    """R300 samples break the XSD; R4xx samples pass it, so only the rule can catch them."""
    expected = re.findall(r"<!-- expect: (R\d{3}) -->", path.read_text(encoding="utf-8"))
    assert len(expected) == 1 and expected[0] in ERROR_CODES
    assert path.stem.startswith(expected[0].lower() + "_")
    valid = CATALOG.get(kind, int(path.parts[-4])).xml_schema.validate(_parse(path))
    assert valid is (expected[0] != "R300")


def test_resident_change_invalid_samples_cover_every_rule() -> None:
    codes = [re.findall(r"expect: (R\d{3})", p.read_text(encoding="utf-8"))[0] for k, p in INVALID
             if k == "jumin.idou"]
    assert {"R300", "R401", "R402", "R403", "R410", "R430", "R440", "R441"} <= set(codes)
    assert codes.count("R430") >= 3 and codes.count("R300") >= 3


# --- generator ------------------------------------------------------------------------------


def test_generated_files_are_up_to_date() -> None:
    """`renkei schemas build --check`, in process: nothing to regenerate."""
    result = build(check=True)
    assert result.up_to_date, [str(p) for p in result.changed + result.removed]
    assert result.unchanged >= 2 * len(KINDS) + len(AVRO)


def test_build_check_command_passes() -> None:
    outcome = CliRunner().invoke(schemas, ["build", "--check"])
    assert outcome.exit_code == 0, outcome.output
    assert "up to date" in outcome.output


def test_build_check_fails_on_a_stale_file_and_build_repairs_it(tmp_path: Path) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), root)
    xsd = root / "zei.jumin" / "1" / "zei.jumin.xsd"
    xsd.write_bytes(xsd.read_bytes().replace(b"minInclusive", b"maxInclusive", 1))
    orphan = root / "zei.jumin" / "1" / "samples" / "valid" / "gone.avro"
    orphan.write_bytes(b"\x00")
    runner = CliRunner()
    stale = runner.invoke(schemas, ["build", "--check", "--root", str(root)])
    assert stale.exit_code == 1
    assert "zei.jumin.xsd" in stale.output and "gone.avro" in stale.output
    assert runner.invoke(schemas, ["build", "--root", str(root)]).exit_code == 0
    assert xsd.read_bytes() == (schemas_dir() / "zei.jumin" / "1" / "zei.jumin.xsd").read_bytes()
    assert not orphan.exists()
    assert runner.invoke(schemas, ["build", "--check", "--root", str(root)]).exit_code == 0


def test_build_refuses_a_valid_sample_that_does_not_validate(tmp_path: Path) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), root)
    sample = root / "koki.jumin" / "1" / "samples" / "valid" / "shibou.xml"
    sample.write_text(sample.read_text(encoding="utf-8").replace("<sex>FEMALE</sex>", ""), encoding="utf-8")
    outcome = CliRunner().invoke(schemas, ["build", "--check", "--root", str(root)])
    assert outcome.exit_code == 1 and "shibou.xml" in outcome.output


def test_list_command_prints_every_kind() -> None:
    outcome = CliRunner().invoke(schemas, ["list"])
    assert outcome.exit_code == 0
    listed = {line.split()[0] for line in outcome.output.splitlines()}
    assert listed == KINDS

