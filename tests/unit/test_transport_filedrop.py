"""The file-drop sink: atomic, idempotent files in XML, CSV or fixed width, UTF-8 or CP932."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import SAMPLE_RECORD, catalog, outbound, plain_outbound, sample_record

from adapters.transports.filedrop import GETA, FileDropSink, fixed_layout, flatten
from bus.errors import ConfigError, PermanentError, TransientError


def with_name(family_name: str) -> dict[str, Any]:
    return {**SAMPLE_RECORD, "name": {**SAMPLE_RECORD["name"], "family_name": family_name}}


def dropped(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


async def test_a_file_is_named_by_the_idempotency_key_and_holds_the_xml(tmp_path: Path) -> None:
    message = plain_outbound()
    receipt = await FileDropSink(tmp_path).deliver(message)
    final = tmp_path / f"{message.envelope.idempotency_key}.xml"
    assert final.read_bytes() == message.xml
    assert (receipt.status, receipt.reference, receipt.destination) == ("applied", final.name, "zei")
    assert dropped(tmp_path) == [final]
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == [], "no temp file is left"


async def test_a_second_delivery_is_a_duplicate_even_after_the_reader_took_the_file(tmp_path: Path) -> None:
    sink = FileDropSink(tmp_path)
    message = plain_outbound()
    await sink.deliver(message)
    assert (await sink.deliver(message)).status == "duplicate"
    for path in dropped(tmp_path):
        path.unlink()  # the receiving system took it
    assert (await sink.deliver(message)).status == "duplicate"
    assert dropped(tmp_path) == []


async def test_concurrent_deliveries_of_one_key_have_one_effect(tmp_path: Path) -> None:
    sink = FileDropSink(tmp_path, format="csv")
    message = plain_outbound()
    receipts = await asyncio.gather(*(sink.deliver(message) for _ in range(8)))
    assert sorted(r.status for r in receipts).count("applied") == 1
    assert len(dropped(tmp_path)) == 1


async def test_cp932_xml_declares_its_encoding_and_keeps_cp932_characters(tmp_path: Path) -> None:
    message = plain_outbound(with_name("髙﨑①"))
    await FileDropSink(tmp_path, encoding="cp932").deliver(message)
    data = dropped(tmp_path)[0].read_bytes()
    assert data.startswith(b'<?xml version="1.0" encoding="CP932"?>')
    assert "髙﨑①".encode("cp932") in data
    root = etree.fromstring(data)
    assert root.findtext(".//{*}family_name") == "髙﨑①"


async def test_an_unmappable_character_is_rejected_naming_field_and_code_point_only(tmp_path: Path) -> None:
    message = plain_outbound(with_name("𠮷野"))
    for fmt in ("xml", "csv", "fixed"):
        with pytest.raises(PermanentError) as caught:
            await FileDropSink(tmp_path / fmt, format=fmt, encoding="cp932").deliver(message)  # type: ignore[arg-type]
        text = str(caught.value)
        assert "name.family_name" in text and "U+20BB7" in text
        assert "𠮷" not in text and "野" not in text
        assert dropped(tmp_path / fmt) == []


async def test_replace_writes_geta_and_lists_each_replacement_in_a_sidecar(tmp_path: Path) -> None:
    message = plain_outbound(with_name("𠮷野"))
    await FileDropSink(tmp_path, format="csv", encoding="cp932", unmappable="replace").deliver(message)
    key = message.envelope.idempotency_key
    rows = list(csv.reader(io.StringIO((tmp_path / f"{key}.csv").read_bytes().decode("cp932"))))
    assert rows[1][rows[0].index("name.family_name")] == f"{GETA}野"
    sidecar = json.loads((tmp_path / f"{key}.csv.unmappable.json").read_text())
    assert sidecar["replaced"] == [{"field": "name.family_name", "code_point": "U+20BB7", "position": 0}]
    assert "野" not in json.dumps(sidecar, ensure_ascii=False)


async def test_numeric_ref_writes_a_character_reference_in_xml(tmp_path: Path) -> None:
    message = plain_outbound(with_name("𠮷野"))
    await FileDropSink(tmp_path, encoding="cp932", unmappable="numeric-ref").deliver(message)
    data = dropped(tmp_path)[0].read_bytes()
    assert b"&#134071;" in data
    assert etree.fromstring(data).findtext(".//{*}family_name") == "𠮷野"


async def test_em_dash_is_written_as_the_cp932_horizontal_bar(tmp_path: Path) -> None:
    message = plain_outbound(with_name("A—B〜C"))
    await FileDropSink(tmp_path, format="fixed", encoding="cp932").deliver(message)
    assert b"A\x81\x5cB\x81\x60C" in dropped(tmp_path)[0].read_bytes()


async def test_private_use_characters_are_never_mapped_silently(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="U\\+E001"):
        await FileDropSink(tmp_path, format="csv", encoding="cp932").deliver(
            plain_outbound(with_name("\ue001田"))
        )


async def test_utf8_takes_every_character(tmp_path: Path) -> None:
    await FileDropSink(tmp_path, format="csv").deliver(plain_outbound(with_name("𠮷野")))
    assert "𠮷野" in dropped(tmp_path)[0].read_text("utf-8")


async def test_csv_has_a_header_of_dotted_paths_and_one_row(tmp_path: Path) -> None:
    await FileDropSink(tmp_path, format="csv").deliver(plain_outbound())
    data = dropped(tmp_path)[0].read_bytes()
    assert data.count(b"\r\n") == 2
    header, row = csv.reader(io.StringIO(data.decode()))
    values = dict(zip(header, row, strict=True))
    assert values["change.effective_date"] == "2025-04-01"
    assert values["address.postal_code"] == "1000001"
    assert values["insured"] == "true"


async def test_fixed_width_pads_with_spaces_to_widths_in_bytes(tmp_path: Path) -> None:
    layout = [("municipality_code", 6), ("name.family_name", 10), ("birth_date", 8), ("insured", 1)]
    await FileDropSink(tmp_path, format="fixed", encoding="cp932", layout=layout).deliver(plain_outbound())
    data = dropped(tmp_path)[0].read_bytes()
    assert data == b"131016" + "髙橋".encode("cp932") + b"      " + b"19800102" + b"1" + b"\r\n"


async def test_a_value_too_long_for_its_width_is_permanent_and_names_the_field(tmp_path: Path) -> None:
    sink = FileDropSink(tmp_path, format="fixed", encoding="utf-8", layout=[("name.family_name", 5)])
    with pytest.raises(PermanentError) as caught:
        await sink.deliver(plain_outbound())  # 髙橋 is 6 bytes in UTF-8
    assert "name.family_name" in str(caught.value) and "髙橋" not in str(caught.value)


async def test_a_control_character_is_refused_in_fixed_width(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="control character"):
        await FileDropSink(tmp_path, format="fixed").deliver(plain_outbound(with_name("A\nB")))


def test_flatten_gives_dotted_paths_in_record_order() -> None:
    record = {"a": 1, "b": {"c": None, "d": date(2025, 1, 2)}, "e": [{"f": 1}, 2]}
    assert flatten(record) == [("a", 1), ("b.c", None), ("b.d", date(2025, 1, 2)), ("e.0.f", 1), ("e.1", 2)]


def test_a_fixed_layout_is_derived_from_an_avro_schema() -> None:
    address = {"type": "record", "name": "Address", "fields": [{"name": "postal_code", "type": "string"}]}
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "municipality_code", "type": "string"},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "birth_date", "type": {"type": "int", "logicalType": "date"}},
            {"name": "kokuho", "type": "boolean"},
            {"name": "sex", "type": {"type": "enum", "name": "Sex", "symbols": ["MALE", "FEMALE"]}},
            {"name": "previous_address", "type": ["null", address], "default": None},
        ],
    }
    assert fixed_layout(schema, {"note": 3}) == [
        ("municipality_code", 6),
        ("note", 3),
        ("birth_date", 8),
        ("kokuho", 1),
        ("sex", 6),
        ("previous_address.postal_code", 7),
    ]


async def test_a_missing_directory_is_transient(tmp_path: Path) -> None:
    sink = FileDropSink(tmp_path / "out")
    (tmp_path / "out" / ".renkei-delivered").rmdir()
    (tmp_path / "out").rmdir()
    with pytest.raises(TransientError, match="ENOENT"):
        await sink.deliver(plain_outbound())


@pytest.mark.parametrize(
    "options",
    [
        {"format": "json"},
        {"encoding": "euc-jp"},
        {"unmappable": "drop"},
        {"format": "csv", "unmappable": "numeric-ref"},
        {"format": "csv", "layout": [("a", 1)]},
    ],
)
def test_misconfiguration_is_a_config_error(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        FileDropSink(tmp_path, **options)


@pytest.mark.skipif(catalog() is None, reason="the schema catalog is not loadable here")
async def test_a_layout_from_a_kinds_schema_is_stable_whatever_is_absent(tmp_path: Path) -> None:
    ks = catalog().get("zei.jumin")
    layout = fixed_layout(ks.avro_schema)  # named types used twice (Address) are expanded each time
    assert [p for p, _ in layout if p.startswith("moved_out_to.")] == [
        f"moved_out_to.{n}" for n in ("postal_code", "prefecture", "city", "town", "banchi", "building")
    ]
    sink = FileDropSink(tmp_path, format="fixed", encoding="cp932", layout=layout)
    for name in ("tennyu", "tenshutsu"):
        await sink.deliver(outbound("zei.jumin", "zei", record=sample_record("zei.jumin", name)))
    lines = [p.read_bytes() for p in dropped(tmp_path)]
    assert {len(line) for line in lines} == {sum(w for _, w in layout) + 2}
