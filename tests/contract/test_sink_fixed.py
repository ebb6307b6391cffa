"""Fixed-width files: the sink contract (test_sinks.SinkContract) for the file sink with
`layout = "fixed"`, against a directory and the inbox's own fixed-width reader; then what only
fixed-width records have: exact byte widths in CP932, numeric codes, a record too long or a
character outside CP932 reported (row, column, code point), never cut or replaced, and the
inbox taking a vendor's file record by record."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sink_contract_support import catalog, outbound
from test_sink_csv import Clock, CsvHarness
from test_sinks import SinkContract

from adapters.registry import build_sink
from adapters.sources.csv_inbox import CsvRefused
from adapters.sources.fixed_inbox import read_fixed, take_fixed
from adapters.transports.csv_layout import split_control
from adapters.transports.csvfile import JST, CsvFileSink
from adapters.transports.fixed_layout import KEY_WIDTH, FixedLayout, fixed_control
from bus.errors import ConfigError, PermanentError
from bus.ports import Outbound, Submission


def layouts() -> tuple[FixedLayout, FixedLayout]:
    ks = catalog().get("zei.jumin")
    return FixedLayout(ks, catalog().codelists), FixedLayout(ks, catalog().codelists, keyed=True)


class FixedHarness(CsvHarness):
    def __init__(self, root: Path) -> None:
        self.directory = root / "zei"
        self.directory.mkdir()
        self.clock = Clock()
        self.sink = CsvFileSink(self.directory, name="zei", catalog=catalog(), clock=self.clock,  # type: ignore[arg-type]
                                layout="fixed")

    def effects(self) -> int:
        if not self.directory.is_dir():
            return 0
        rows = sum(len(read_fixed(p.read_bytes(), *layouts())[1]) for p in self.directory.glob("zei-*.dat"))
        state = self.directory / ".renkei-csv"
        parts = sum(p.read_bytes().count(b"\r\n") for p in state.glob("*.part")) if state.is_dir() else 0
        return rows + parts


class TestFixedWidthSink(SinkContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> FixedHarness:
        return FixedHarness(tmp_path)

    async def test_a_published_file_is_records_of_the_layout_length_with_a_control_record(
            self, harness: FixedHarness) -> None:
        first, second = harness.message(), harness.message()
        await harness.sink.deliver(first)
        await harness.sink.deliver(second)
        harness.clock.now = datetime(2026, 12, 6, 0, 0, 1, tzinfo=JST)
        assert (await harness.sink.deliver(harness.message())).reference == "zei-zei.jumin-20261206.dat"
        published = harness.directory / "zei-zei.jumin-20261205.dat"
        body, control = split_control(published.read_bytes())
        assert control is not None and control["rows"] == "2"
        assert published.read_bytes() == body + fixed_control(body)
        layout, records = read_fixed(published.read_bytes(), *layouts())
        assert layout.keyed and [len(r) for r in records] == [layouts()[1].length] * 2
        key, record = layout.decode(records[0], 1)
        assert key == first.envelope.idempotency_key
        ks = catalog().get("zei.jumin")
        assert ks.to_xml(record) == ks.to_xml(first.record)  # every field back, codes and dates included
        assert (await harness.sink.deliver(first)).status == "duplicate"  # remembered after publication

    async def test_a_character_outside_cp932_is_reported_with_its_code_point(self, harness: FixedHarness) -> None:
        record = harness.message().record
        message = outbound("zei.jumin", "zei", record={**record, "name": {**record["name"], "given_name": "鷗外"}})
        with pytest.raises(PermanentError, match=r"column 名\[name/given_name\]: U\+9DD7 is not in CP932") as error:
            await harness.sink.deliver(message)
        assert "鷗外" not in str(error.value)


def test_codes_are_numeric_dates_compact_and_numbers_zero_padded() -> None:
    plain, _ = layouts()
    record = outbound("zei.jumin", "zei").record
    line = plain.encode([("", record)])
    assert line.endswith(b"\r\n") and len(line) == plain.length + 2
    spans = {c.path: (at - 1, width) for c, at, width in plain.offsets()}
    start, width = spans["change/reason"]
    assert line[start:start + width].decode() == catalog().codelists.numeric("ChangeReason", record["change"]["reason"])
    start, width = spans["change/effective_date"]
    assert line[start:start + width].decode() == record["change"]["effective_date"].strftime("%Y%m%d")
    start, width = spans["history_number"]
    assert line[start:start + width].decode() == str(record["history_number"]).rjust(width, "0")


def test_a_value_longer_than_its_column_is_reported_not_cut() -> None:
    plain, _ = layouts()
    record = outbound("zei.jumin", "zei").record
    long_name = {**record, "name": {**record["name"], "family_name": "山" * 101}}  # 202 bytes in 200
    with pytest.raises(ValueError, match=r"row 1, column 氏\[name/family_name\]: 202 bytes is longer than its 200"):
        plain.encode([("", long_name)])


def test_a_fixed_width_sink_is_cp932_only_and_built_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fixed-width layout is CP932"):
        CsvFileSink(tmp_path, encoding="utf-8", layout="fixed")
    sink = build_sink("csv", {"directory": str(tmp_path), "layout": "fixed", "destination": "kokuho"})
    assert isinstance(sink, CsvFileSink) and sink.fixed and sink.suffix == ".dat"


def test_a_fixed_width_file_that_disagrees_with_its_control_record_or_layout_is_refused_whole() -> None:
    plain, keyed = layouts()
    body = plain.encode([("", outbound("zei.jumin", "zei").record)])
    with pytest.raises(CsvRefused, match="control record"):
        read_fixed(body + fixed_control(body + b"x"), plain, keyed)
    with pytest.raises(CsvRefused, match=f"row 1: 10 bytes, a record of zei.jumin has {plain.length} "
                                         f"\\({plain.length + KEY_WIDTH} with the 連携キー"):
        read_fixed(b"0123456789\r\n", plain, keyed)


async def test_the_inbox_submits_each_record_of_a_vendor_file_and_names_a_broken_one(tmp_path: Path) -> None:
    plain, _ = layouts()
    records = [outbound("zei.jumin", "zei").record for _ in range(2)]
    body = plain.encode([("", r) for r in records])
    broken = bytearray(body)
    reason = next(at - 1 for c, at, _ in plain.offsets() if c.path == "change/reason")
    broken[plain.length + 2 + reason:plain.length + 2 + reason + 2] = b"ZZ"  # record 2: no such code
    path = tmp_path / "zei-20261205.dat"
    path.write_bytes(bytes(broken) + fixed_control(bytes(broken)))
    submitted: list[bytes] = []

    async def submit(raw: bytes, content_type: str, kind: str | None) -> Submission:
        submitted.append(raw)
        return Submission("accepted", kind=kind or "")

    status, counts, detail = await take_fixed(path, submit, catalog(), "zei.jumin", 100)
    assert (status, counts["accepted"], counts["rejected"]) == ("rejected", 1, 1)
    ks = catalog().get("zei.jumin")
    assert submitted == [ks.to_xml(records[0])]
    issues: Any = detail["rejected_rows"]
    assert issues[0]["row"] == 2
    assert "row 2: column 異動事由[change/reason]: not a ChangeReason code" in issues[0]["issues"][0]["message"]


def test_a_record_from_the_file_sink_carries_its_key_first() -> None:
    _, keyed = layouts()
    message: Outbound = outbound("zei.jumin", "zei")
    line = keyed.encode([(message.envelope.idempotency_key, message.record)])
    assert line[:KEY_WIDTH].decode().rstrip() == message.envelope.idempotency_key
    with pytest.raises(ValueError, match="連携キー: 70 bytes is longer than its 64"):
        keyed.encode([("k" * 70, message.record)])
