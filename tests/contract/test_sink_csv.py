"""The sink contract (test_sinks.SinkContract) for the CSV file sink, in CP932 and UTF-8,
against a directory and a reader of what was written (the inbox's own CSV reader); then
what only files have: one file per period with a control record and checksum, atomic
publication, receipts read back, and unmappable characters reported, never replaced."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sink_contract_support import catalog, outbound
from test_sinks import SinkContract

from adapters.registry import build_sink
from adapters.sources.csv_inbox import CsvRefused, read_csv
from adapters.transports.csv_layout import Layout, control_record, layout_docs, split_control
from adapters.transports.csvfile import JST, CsvFileSink
from bus.errors import PermanentError
from bus.ports import Outbound

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, 9, 0, tzinfo=JST)

    def __call__(self) -> datetime:
        return self.now


class CsvHarness:
    def __init__(self, root: Path, encoding: str) -> None:
        self.directory = root / "zei"
        self.directory.mkdir()
        self.clock = Clock()
        self.sink = CsvFileSink(self.directory, encoding=encoding, name="zei", catalog=catalog(),  # type: ignore[arg-type]
                                clock=self.clock)

    def message(self) -> Outbound:
        return outbound("zei.jumin", "zei")

    def effects(self) -> int:
        """Rows a reader takes: published files (parsed, checked against their control record)
        plus the working files of the current period."""
        if not self.directory.is_dir():
            return 0
        layout = Layout(catalog().get("zei.jumin"))
        rows = sum(len(read_csv(p.read_bytes(), layout)[1]) for p in self.directory.glob("zei-*.csv"))
        state = self.directory / ".renkei-csv"
        parts = sum(p.read_bytes().count(b"\r\n") for p in state.glob("*.part")) if state.is_dir() else 0
        return rows + parts

    async def make_unavailable(self) -> None:
        shutil.rmtree(self.directory)  # the share is not mounted

    async def make_gone(self) -> None:
        shutil.rmtree(self.directory)
        self.directory.write_bytes(b"")  # a file where the directory was

    async def make_refusing(self) -> Outbound:
        record = outbound("zei.jumin", "zei").record
        return outbound("zei.jumin", "zei", record={**record, "name": {**record["name"], "family_name": "𠮷野"}})

    async def restore(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)


class CsvContract(SinkContract):
    encoding: ClassVar[str] = "cp932"

    @pytest.fixture
    def harness(self, tmp_path: Path) -> CsvHarness:
        return CsvHarness(tmp_path, self.encoding)

    async def test_a_later_period_publishes_the_file_with_its_control_record(self, harness: CsvHarness) -> None:
        first, second = harness.message(), harness.message()
        await harness.sink.deliver(first)
        await harness.sink.deliver(second)
        assert list(harness.directory.glob("*.csv")) == []  # the day is not over
        harness.clock.now = datetime(2026, 12, 6, 0, 0, 1, tzinfo=JST)
        receipt = await harness.sink.deliver(harness.message())
        assert receipt.reference == "zei-zei.jumin-20261206.csv"
        published = harness.directory / "zei-zei.jumin-20261205.csv"
        body, control = split_control(published.read_bytes())
        assert control is not None and control["rows"] == "2"
        assert published.read_bytes() == body + control_record(body)
        encoding, rows = read_csv(published.read_bytes(), Layout(catalog().get("zei.jumin")))
        assert encoding == self.encoding and len(rows) == 2
        assert body.decode(self.encoding).split("\r\n")[1].startswith(first.envelope.idempotency_key + ",")
        assert (await harness.sink.deliver(first)).status == "duplicate"  # remembered after publication
        assert [p.name for p in harness.directory.iterdir() if p.name.endswith(".tmp")] == []

    async def test_receipts_are_read_back(self, harness: CsvHarness) -> None:
        await harness.sink.deliver(harness.message())
        harness.sink.seal_due()
        [published] = harness.directory.glob("zei-*.csv")
        assert [r.status for r in harness.sink.receipts()] == ["pending"]
        _, control = split_control(published.read_bytes())
        assert control is not None
        published.with_name(published.name + ".receipt").write_text(f"rows=1,sha256={control['sha256']}\n")
        assert [r.status for r in harness.sink.receipts()] == ["confirmed"]
        published.with_name(published.name + ".receipt").write_text("rows=1,sha256=0\n")
        assert [r.status for r in harness.sink.receipts()] == ["mismatch"]

    async def test_a_sink_restarted_after_a_torn_row_keeps_every_whole_one(self, harness: CsvHarness) -> None:
        message = harness.message()
        await harness.sink.deliver(message)
        [part] = (harness.directory / ".renkei-csv").glob("*.part")
        with part.open("ab") as fh:
            fh.write(b"half-a-row,without its end")  # the crash came mid-write
        again = CsvFileSink(harness.directory, encoding=self.encoding, name="zei", catalog=catalog(),  # type: ignore[arg-type]
                            clock=harness.clock)
        assert (await again.deliver(message)).status == "duplicate"
        assert (await again.deliver(harness.message())).status == "applied"
        assert harness.effects() == 2


class TestCsvSinkCp932(CsvContract):
    encoding: ClassVar[str] = "cp932"

    async def test_a_character_outside_cp932_is_reported_with_its_code_point(self, harness: CsvHarness) -> None:
        record = harness.message().record
        message = outbound("zei.jumin", "zei", record={**record, "name": {**record["name"], "given_name": "鷗外"}})
        with pytest.raises(PermanentError, match=r"column 名\[name/given_name\]: U\+9DD7 is not in CP932"):
            await harness.sink.deliver(message)


class TestCsvSinkUtf8(CsvContract):
    encoding: ClassVar[str] = "utf-8"

    @pytest.fixture
    def harness(self, tmp_path: Path) -> CsvHarness:
        """UTF-8 holds 𠮷, so the contract's refusal is a private-use 外字 here."""
        harness = CsvHarness(tmp_path, "utf-8")

        async def refusing() -> Outbound:
            record = outbound("zei.jumin", "zei").record
            name = {**record["name"], "family_name": "\ue001野"}
            return outbound("zei.jumin", "zei", record={**record, "name": name})

        harness.make_refusing = refusing  # type: ignore[method-assign]
        return harness


def test_the_csv_transport_is_built_by_name(tmp_path: Path) -> None:
    sink = build_sink("csv", {"directory": str(tmp_path), "encoding": "utf-8", "period": "hour",
                              "destination": "kokuho"})
    assert isinstance(sink, CsvFileSink) and (sink.name, sink.period) == ("kokuho", "hour")


def test_a_file_that_disagrees_with_its_control_record_is_refused_whole(tmp_path: Path) -> None:
    layout = Layout(catalog().get("zei.jumin"))
    body = ("," .join(layout.headers()) + "\r\n").encode()
    with pytest.raises(CsvRefused, match="control record"):
        read_csv(body + control_record(body + b"x"), layout)
    with pytest.raises(CsvRefused, match="neither UTF-8 nor CP932"):
        read_csv(b"\x81\x20\r\n", layout)  # a lead byte without its trail: neither encoding


def test_docs_file_layouts_is_generated_from_the_catalog() -> None:
    expected: Any = layout_docs(catalog())
    assert (ROOT / "docs" / "file-layouts.md").read_text(encoding="utf-8") == expected, (
        "regenerate: python3 -m adapters.transports.csv_layout > docs/file-layouts.md")
