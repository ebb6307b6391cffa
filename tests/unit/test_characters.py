"""The character model (issue 12): names as municipalities write them get through unchanged;
vendor 外字 does not; receivers limited to CP932 / JIS X 0208 get reported degradations.

Compatibility ideographs (塚 U+FA10, 神 U+FA19, 﨑 U+FA11 …) and IVS sequences are the legal
glyphs a registry records; registered MJ+ private-use code points (schemas/charsets/) pass;
every other private-use code point is R440, named by code point.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from bus.catalog import Catalog
from bus.catalog.charsets import CharacterSets
from bus.errors import ConfigError, ValidationFailed
from bus.validation import validate
from bus.validation.chargate import check_string
from bus.validation.degrade import degrade_record, degrade_text


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def sets(catalog: Catalog) -> CharacterSets:
    return CharacterSets.load(catalog.root)


def codes(value: str, sets: CharacterSets, path: str = "/ResidentChange/name/family_name") -> list[str]:
    return [i.code for i in check_string(path, value, charsets=sets)]


def _cp932_compatibility_ideographs() -> list[str]:
    found = set()
    for lead in [*range(0x81, 0xA0), *range(0xE0, 0xFD)]:
        for trail in [*range(0x40, 0x7F), *range(0x80, 0xFD)]:
            try:
                ch = bytes([lead, trail]).decode("cp932")
            except UnicodeDecodeError:
                continue
            if 0xF900 <= ord(ch) <= 0xFAFF:
                found.add(ch)
    return sorted(found)


@pytest.mark.parametrize("name", ["\ufa10本", "\ufa19田", "\ufa30川", "山\ufa11", "\U0002f800"],
                         ids=["塚-FA10", "神-FA19", "FA30", "﨑-FA11", "2F800"])
def test_compatibility_ideographs_pass_the_gate(name: str, sets: CharacterSets) -> None:
    """A compatibility ideograph is the legal glyph, not a normalisation problem (was R441)."""
    assert unicodedata.normalize("NFC", name) != name or name == "山\ufa11"
    assert codes(name, sets) == []


def test_every_compatibility_ideograph_cp932_decodes_to_passes_the_gate(sets: CharacterSets) -> None:
    """Text read from a CP932 registry file keeps its IBM/NEC-selected ideographs and passes."""
    ideographs = _cp932_compatibility_ideographs()
    assert len(ideographs) >= 30
    assert [c for c in ideographs if codes(c, sets)] == []


def test_ivs_sequences_pass_the_gate(sets: CharacterSets) -> None:
    """辻 + VS17 (U+E0100) and 葛 + U+E0101: ideographic variation sequences are carried as they are."""
    assert codes("\u8fbb\U000e0100", sets) == []
    assert codes("\u845b\U000e0101城", sets) == []


def test_a_decomposed_kana_is_still_not_nfc(sets: CharacterSets) -> None:
    """The compatibility-ideograph exception does not hide a real NFC problem beside it."""
    assert codes("\ufa10カ\u3099", sets) == ["R441"]


def test_a_registered_mjplus_code_point_passes_the_gate(sets: CharacterSets) -> None:
    """A private-use code point listed by a registered set (MJPLUS) is accepted."""
    assert sets.registered_name(0xF0100) == "MJPLUS"
    assert codes("\U000f0100田", sets) == []


@pytest.mark.parametrize("value", ["\ue000藤", "\U000f0fff", "佐\U00100001"],
                         ids=["bmp-vendor-gaiji", "in-range-but-unlisted", "plane16"])
def test_every_other_private_use_character_is_refused_naming_it(value: str, sets: CharacterSets) -> None:
    """Vendor 外字 (or an MJ+ range code point the mapping does not list) is R440 with its code point."""
    [issue] = check_string("/ResidentChange/name/family_name", value, charsets=sets)
    assert issue.code == "R440"
    cp = next(c for c in value if unicodedata.category(c) == "Co")
    assert f"U+{ord(cp):04X}" in issue.message
    assert "registered" in issue.message


def test_a_message_with_compatibility_ideographs_validates_and_keeps_them(catalog: Catalog) -> None:
    """塚 U+FA10 and 神 U+FA19 in the name, an IVS in the town: valid, carried unchanged."""
    xml = (catalog.get("jumin.idou", 1).samples_dir / "valid" / "tennyu.xml").read_text(encoding="utf-8")
    xml = xml.replace("<family_name>佐藤</family_name>", "<family_name>\ufa10\ufa19</family_name>")
    xml = xml.replace("<town>神田神保町</town>", "<town>\u8fbb\U000e0100町</town>")
    record = validate(xml.encode(), content_type="application/xml", catalog=catalog).record
    assert record["name"]["family_name"] == "\ufa10\ufa19"
    assert record["address"]["town"] == "\u8fbb\U000e0100町"


def test_a_message_with_vendor_gaiji_is_refused(catalog: Catalog) -> None:
    xml = (catalog.get("jumin.idou", 1).samples_dir / "valid" / "tennyu.xml").read_text(encoding="utf-8")
    xml = xml.replace("<family_name>佐藤</family_name>", "<family_name>佐\ue8a1</family_name>")
    with pytest.raises(ValidationFailed) as caught:
        validate(xml.encode(), content_type="application/xml", catalog=catalog)
    assert [i.code for i in caught.value.issues] == ["R440"]
    assert "U+E8A1" in caught.value.issues[0].message


# --- the catalog's declaration --------------------------------------------------------------


def _write(root: Path, ranges: str, mapping: str) -> Path:
    folder = root / "charsets"
    folder.mkdir()
    (folder / "charsets.yaml").write_text(
        f"registered:\n  - name: X\n    ranges: [{ranges}]\n    mapping: m.tsv\n", encoding="utf-8")
    (folder / "m.tsv").write_text(mapping, encoding="utf-8")
    return root


def test_a_registered_range_must_be_private_use(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not private use"):
        CharacterSets.load(_write(tmp_path, '"4E00-4EFF"', "U+4E00\tA\n"))


def test_a_mapped_code_point_must_lie_in_its_set_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="outside"):
        CharacterSets.load(_write(tmp_path, '"F0000-F00FF"', "U+F0100\tA\n"))


def test_a_catalog_without_charsets_registers_nothing(tmp_path: Path) -> None:
    sets = CharacterSets.load(tmp_path)
    assert sets.registered_name(0xF0100) is None
    assert codes("\U000f0100", sets) == ["R440"]


# --- degradation for CP932 / JIS X 0208 receivers ---------------------------------------------


def test_jis_x_0208_receivers_get_each_degradation_reported(sets: CharacterSets) -> None:
    """塚 U+FA10 → U+585A (Unicode), 髙 → 高 (the map), 辻+IVS → 辻; each step reported."""
    text, steps, unmappable = degrade_text("\ufa10髙\u8fbb\U000e0100", "jisx0208", "/n", sets)
    assert text == "塚高辻"
    assert [(s.position, s.original, s.to) for s in steps] == [
        (0, "U+FA10", "U+585A"), (1, "U+9AD9", "U+9AD8"), (2, "U+8FBB U+E0100", "U+8FBB")]
    assert "MJ縮退マップ" in steps[1].rule
    assert unmappable == []


def test_cp932_receivers_keep_what_cp932_holds(sets: CharacterSets) -> None:
    """CP932 holds 塚 U+FA10 and 髙: unchanged; 𠮷 (not in CP932) → 吉, reported."""
    text, steps, _ = degrade_text("\ufa10髙𠮷", "cp932", "/n", sets)
    assert text == "\ufa10髙吉"
    assert [(s.original, s.to) for s in steps] == [("U+20BB7", "U+5409")]


def test_a_registered_mjplus_character_degrades_through_its_mapping(sets: CharacterSets) -> None:
    text, steps, _ = degrade_text("\U000f0100", "cp932", "/n", sets)
    assert text == "吉" and steps[0].rule.startswith("MJ+")


def test_a_character_without_substitute_is_unmappable_never_geta(sets: CharacterSets) -> None:
    """No 〓: the character is reported unmappable, so the sink can refuse the message."""
    result = degrade_record({"name": {"family_name": "\U000f0101田"}}, "cp932", sets)
    assert "〓" not in result.record["name"]["family_name"]
    assert [(s.path, s.original, s.to) for s in result.unmappable] == [("/name/family_name", "U+F0101", None)]
    assert "\U000f0101" not in str([s.as_dict() for s in result.unmappable])


def test_a_private_use_character_is_never_taken_as_cp932(sets: CharacterSets) -> None:
    """CP932 has a user area for U+E000–U+E757, whose meaning differs between systems: a vendor
    外字 there is unmappable, not written through."""
    _, steps, unmappable = degrade_text("佐\ue000", "cp932", "/n", sets)
    assert steps == [] and [s.original for s in unmappable] == ["U+E000"]


def test_a_cp932_file_sink_that_degrades_reports_every_step(tmp_path: Path) -> None:
    """unmappable='degrade': 𠮷 → 吉 in the CSV, the step in the sidecar, no 〓."""
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "contract"))
    from sink_contract_support import outbound, sample_record

    from adapters.transports.filedrop import FileDropSink

    record = sample_record("zei.jumin", "tennyu")
    record["name"]["family_name"] = "𠮷田"
    FileDropSink(tmp_path, format="csv", encoding="cp932", unmappable="degrade").deliver_sync(
        outbound("zei.jumin", "zei", record=record))
    [data] = [p for p in tmp_path.iterdir() if p.suffix == ".csv"]
    text = data.read_bytes().decode("cp932")
    assert "吉田" in text and "〓" not in text
    [sidecar] = [p for p in tmp_path.iterdir() if p.name.endswith(".unmappable.json")]
    report = json.loads(sidecar.read_text(encoding="utf-8"))
    assert [(r["path"], r["from"], r["to"]) for r in report["replaced"]] == [("/name/family_name", "U+20BB7", "U+5409")]


def test_a_cp932_file_sink_that_degrades_refuses_what_has_no_substitute(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "contract"))
    from sink_contract_support import outbound, sample_record

    from adapters.transports.filedrop import FileDropSink
    from bus.errors import PermanentError

    record = sample_record("zei.jumin", "tennyu")
    record["name"]["family_name"] = "佐\ue000"
    with pytest.raises(PermanentError, match="U\\+E000"):
        FileDropSink(tmp_path, format="csv", encoding="cp932", unmappable="degrade").deliver_sync(
            outbound("zei.jumin", "zei", record=record))
