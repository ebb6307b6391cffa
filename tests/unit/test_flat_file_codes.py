"""CSV and fixed-width files carry the numeric codes schemas/codelists.yaml promises (issue 12,
item 7), not the enum symbols of XML and Avro."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "contract"))
from sink_contract_support import outbound, sample_record

from adapters.transports.filedrop import FileDropSink
from bus.catalog import Catalog
from bus.catalog.numeric import numeric_record, with_numeric_codes


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def test_a_csv_file_holds_numeric_codes_for_code_list_fields(tmp_path: Path) -> None:
    record = sample_record("zei.jumin", "tennyu")
    assert record["change"]["reason"] == "TENNYU" and record["sex"] == "MALE"
    FileDropSink(tmp_path, format="csv").deliver_sync(outbound("zei.jumin", "zei", record=record))
    [path] = [p for p in tmp_path.iterdir() if p.is_file()]
    header, row = csv.reader(io.StringIO(path.read_bytes().decode()))
    values = dict(zip(header, row, strict=True))
    assert values["change.reason"] == "11"  # 転入, schemas/codelists.yaml ChangeReason
    assert values["sex"] == "01"
    assert values["resident_status"] == "01"
    assert "TENNYU" not in path.read_text()


def test_a_fixed_width_file_holds_numeric_codes(tmp_path: Path) -> None:
    layout = [("change.reason", 2), ("sex", 2), ("relationship", 2)]
    record = sample_record("zei.jumin", "tennyu")
    FileDropSink(tmp_path, format="fixed", layout=layout).deliver_sync(
        outbound("zei.jumin", "zei", record=record))
    [path] = [p for p in tmp_path.iterdir() if p.is_file()]
    assert path.read_bytes() == b"110101\r\n"  # TENNYU 11, MALE 01, SETAINUSHI 01


def test_only_enum_fields_change_and_the_input_is_untouched(catalog: Catalog) -> None:
    record = sample_record("zei.jumin", "tennyu")
    coded = numeric_record("zei.jumin", 1, record)
    assert record["change"]["reason"] == "TENNYU"
    assert coded["change"]["effective_date"] == record["change"]["effective_date"]
    assert coded["municipality_code"] == record["municipality_code"]
    assert numeric_record("no.such.kind", 1, record) == record
    assert with_numeric_codes({"sex": "OTHER"}, catalog.get("zei.jumin").fields, catalog.codelists) == {
        "sex": "OTHER"}
