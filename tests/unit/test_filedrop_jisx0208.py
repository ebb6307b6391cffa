"""The file-drop sink's JIS X 0208-only encoding (issue 12): Shift_JIS bytes of ASCII/JIS X 0201
Roman + JIS X 0208, the JIS/Microsoft variant pairs folded, CP932-only characters unmappable."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import SAMPLE_RECORD, outbound, plain_outbound, sample_record

from adapters.registry import build_sink
from adapters.transports.filedrop import GETA, FileDropSink
from bus.errors import ConfigError, PermanentError

#: NEC special characters, NEC-selected/IBM extension kanji, the IBM ￤ and half-width katakana:
#: all in CP932, none in JIS X 0208
CP932_ONLY = {"①": "U+2460", "Ⅰ": "U+2160", "㈱": "U+3231", "髙": "U+9AD9", "﨑": "U+FA11", "￤": "U+FFE4",
              "ｶ": "U+FF76"}


def with_name(family_name: str, **more: str) -> dict[str, Any]:
    return {**SAMPLE_RECORD, "name": {**SAMPLE_RECORD["name"], "family_name": family_name, **more}}


def dropped(directory: Path, suffix: str) -> bytes:
    [path] = [p for p in directory.iterdir() if p.name.endswith(suffix) and not p.name.startswith(".")]
    return path.read_bytes()


def csv_rows(data: bytes) -> dict[str, str]:
    header, row = csv.reader(io.StringIO(data.decode("shift_jis")))
    return dict(zip(header, row, strict=True))


def test_a_csv_row_is_written_in_shift_jis_bytes_of_jis_x_0208(tmp_path: Path) -> None:
    """高橋 一郎 タカハシ 千代田区 are JIS X 0208: the file holds their Shift_JIS bytes and nothing
    the codec of CP932 would add."""
    record = with_name("高橋")
    FileDropSink(tmp_path, format="csv", encoding="jisx0208").deliver_sync(plain_outbound(record))
    data = dropped(tmp_path, ".csv")
    assert b",\x8d\x82\x8b\xb4," in data  # 高橋
    assert "一郎".encode("shift_jis") in data and "千代田区".encode("shift_jis") in data
    assert data.endswith(b"\r\n") and not data.startswith(b"\xef\xbb\xbf")
    assert csv_rows(data)["name.family_name"] == "高橋"


def test_fixed_width_counts_bytes_of_shift_jis(tmp_path: Path) -> None:
    sink = FileDropSink(tmp_path, format="fixed", encoding="jisx0208",
                        layout=[("name.family_name", 6), ("name.given_name", 4)])
    sink.deliver_sync(plain_outbound(with_name("高橋")))
    assert dropped(tmp_path, ".dat") == b"\x8d\x82\x8b\xb4  " + "一郎".encode("shift_jis") + b"\r\n"


async def test_xml_declares_shift_jis_and_reads_back_as_written(tmp_path: Path) -> None:
    await FileDropSink(tmp_path, encoding="jisx0208").deliver(plain_outbound(with_name("高橋〜")))
    data = dropped(tmp_path, ".xml")
    assert data.startswith(b'<?xml version="1.0" encoding="Shift_JIS"?>\n')
    assert "高橋〜".encode("shift_jis") in data
    assert etree.fromstring(data).findtext(".//{*}family_name") == "高橋〜"


def test_the_microsoft_forms_of_the_variant_pairs_are_written_as_their_jis_twins(tmp_path: Path) -> None:
    """～ ∥ － ￠ ￡ ￢ (CP932's decodings) and — become 〜 ‖ − ¢ £ ¬ ―: the same bytes either way."""
    jis = "A〜‖−¢£¬―"
    microsoft = "A～∥－￠￡￢—"
    expected = b"A\x81\x60\x81\x61\x81\x7c\x81\x91\x81\x92\x81\xca\x81\x5c"
    for n, text in enumerate((jis, microsoft)):
        FileDropSink(tmp_path / str(n), format="fixed", encoding="jisx0208",
                     layout=[("name.family_name", 20)]).deliver_sync(plain_outbound(with_name(text)))
        assert dropped(tmp_path / str(n), ".dat").startswith(expected + b" ")
    assert expected == jis.encode("cp932")  # the bytes a CP932 file holds for them


def test_what_jis_x_0208_itself_holds_is_written(tmp_path: Path) -> None:
    """≒ ∵ ≡ √ ∠ are in JIS X 0208 row 2 (CP932 repeats them among the NEC specials): written."""
    FileDropSink(tmp_path, format="csv", encoding="jisx0208").deliver_sync(plain_outbound(with_name("≒∵≡√∠")))
    data = dropped(tmp_path, ".csv")
    assert b"\x81\xe0\x81\xe6\x81\xdf\x81\xe3\x81\xda" in data


@pytest.mark.parametrize("fmt", ["xml", "csv", "fixed"])
@pytest.mark.parametrize("char", sorted(CP932_ONLY))
def test_a_character_only_cp932_holds_is_refused_naming_field_and_code_point(
        tmp_path: Path, fmt: str, char: str) -> None:
    message = plain_outbound(with_name(f"佐{char}"))
    with pytest.raises(PermanentError) as caught:
        FileDropSink(tmp_path, format=fmt, encoding="jisx0208").deliver_sync(message)  # type: ignore[arg-type]
    text = str(caught.value)
    assert "name.family_name" in text and CP932_ONLY[char] in text and "jisx0208" in text
    assert char not in text and "佐" not in text
    assert not [p for p in tmp_path.iterdir() if p.is_file()]
    FileDropSink(tmp_path / "cp932", format=fmt, encoding="cp932").deliver_sync(message)  # type: ignore[arg-type]


def test_replace_writes_geta_and_lists_each_cp932_only_character(tmp_path: Path) -> None:
    message = plain_outbound(with_name("髙①野"))
    FileDropSink(tmp_path, format="csv", encoding="jisx0208", unmappable="replace").deliver_sync(message)
    assert csv_rows(dropped(tmp_path, ".csv"))["name.family_name"] == f"{GETA}{GETA}野"
    sidecar = json.loads(dropped(tmp_path, ".unmappable.json"))
    assert sidecar["replaced"] == [{"field": "name.family_name", "code_point": "U+9AD9", "position": 0},
                                   {"field": "name.family_name", "code_point": "U+2460", "position": 1}]


def test_numeric_ref_keeps_a_cp932_only_character_in_xml(tmp_path: Path) -> None:
    FileDropSink(tmp_path, encoding="jisx0208", unmappable="numeric-ref").deliver_sync(
        plain_outbound(with_name("髙橋")))
    data = dropped(tmp_path, ".xml")
    assert b"&#39641;" in data and "髙".encode("cp932") not in data
    assert etree.fromstring(data).findtext(".//{*}family_name") == "髙橋"


def test_degrade_writes_the_substitutes_and_reports_every_step(tmp_path: Path) -> None:
    """髙 → 高 and 﨑 → 崎 (MJ縮退マップ), 塚 U+FA10 → 塚 U+585A (canonical decomposition): in the
    file, each step in the sidecar, no 〓; ～ is folded (not a step)."""
    record = sample_record("zei.jumin", "tennyu")
    record["name"]["family_name"] = "髙﨑\ufa10"
    record["address"]["banchi"] = "1～3"
    FileDropSink(tmp_path, format="csv", encoding="jisx0208", unmappable="degrade").deliver_sync(
        outbound("zei.jumin", "zei", record=record))
    row = csv_rows(dropped(tmp_path, ".csv"))
    assert row["name.family_name"] == "高崎\u585a" and row["address.banchi"] == "1〜3"
    assert GETA.encode("shift_jis") not in dropped(tmp_path, ".csv")
    report = json.loads(dropped(tmp_path, ".unmappable.json"))
    assert [(r["path"], r["position"], r["from"], r["to"]) for r in report["replaced"]] == [
        ("/name/family_name", 0, "U+9AD9", "U+9AD8"), ("/name/family_name", 1, "U+FA11", "U+5D0E"),
        ("/name/family_name", 2, "U+FA10", "U+585A")]


@pytest.mark.parametrize("fmt", ["csv", "fixed"])
def test_degrade_refuses_a_character_without_substitute_never_geta(tmp_path: Path, fmt: str) -> None:
    """① has no JIS X 0208 substitute: a PermanentError naming the path and U+2460, no file."""
    record = sample_record("zei.jumin", "tennyu")
    record["name"]["family_name"] = "髙①"
    with pytest.raises(PermanentError) as caught:
        FileDropSink(tmp_path, format=fmt, encoding="jisx0208", unmappable="degrade").deliver_sync(  # type: ignore[arg-type]
            outbound("zei.jumin", "zei", record=record))
    text = str(caught.value)
    assert "/name/family_name U+2460" in text and "JIS X 0208" in text and "①" not in text
    assert not [p for p in tmp_path.iterdir() if p.is_file()]


def test_degrade_for_cp932_folds_the_em_dash_before_degrading(tmp_path: Path) -> None:
    """— U+2014 is ― 0x815C in CP932 (folded, as without degrade), not a character to refuse."""
    record = sample_record("zei.jumin", "tennyu")
    record["address"]["banchi"] = "1—3"
    FileDropSink(tmp_path, format="fixed", encoding="cp932", unmappable="degrade").deliver_sync(
        outbound("zei.jumin", "zei", record=record))
    assert b"1\x81\x5c3" in dropped(tmp_path, ".dat")


def test_the_encoding_is_built_by_name_and_misuse_is_a_config_error(tmp_path: Path) -> None:
    sink = build_sink("file", {"directory": str(tmp_path), "format": "fixed", "encoding": "jisx0208",
                               "unmappable": "degrade"})
    assert isinstance(sink, FileDropSink) and sink.encoding == "jisx0208"
    with pytest.raises(ConfigError, match="jisx0208"):
        FileDropSink(tmp_path, encoding="jis0208")
    with pytest.raises(ConfigError, match="degrade"):
        FileDropSink(tmp_path, format="xml", encoding="jisx0208", unmappable="degrade")
    with pytest.raises(ConfigError, match="degrade"):
        FileDropSink(tmp_path, format="csv", encoding="utf-8", unmappable="degrade")
