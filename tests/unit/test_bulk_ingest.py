"""Bulk files streamed through the intake: bounded memory, batches in file order, a checkpoint
to resume from, rows rejected with where (never what), progress readable from the state dir."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import fastavro
import pytest

from adapters.sources.bulk import open_bulk
from adapters.sources.csv_inbox import CsvRefused
from adapters.sources.ingest import IngestBusy, Ingester, IngestProgress, progress_dir, read_progress
from adapters.transports.csv_layout import Layout, control_record, encode_rows
from adapters.transports.fixed_layout import FixedLayout, fixed_control
from bus.catalog import Catalog
from bus.errors import BrokerUnavailable
from bus.ports import Submission
from bus.stages.intake import RawMessage
from bus.synthetic.samples import sample_records

SCHEMA = fastavro.parse_schema({"type": "record", "name": "renkei.test_batch.v1.Row",
                                "fields": [{"name": "n", "type": "int"}, {"name": "text", "type": "string"}]})


def write_avro(path: Path, count: int) -> None:
    with path.open("wb") as fh:
        fastavro.writer(fh, SCHEMA, ({"n": i, "text": f"row {i}"} for i in range(count)), sync_interval=4000)


def number_of(raw: bytes) -> int:
    return int(fastavro.schemaless_reader(io.BytesIO(raw), SCHEMA, None)["n"])  # type: ignore[call-overload,index]


class BatchIntake:
    """An intake with `submit_many`: records every batch; fails with the broker down from batch `fail_at`."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_at = fail_at

    async def submit(self, raw: bytes, *, content_type: str, source: str, kind: str | None = None) -> Submission:
        raise AssertionError("a batch intake is given batches")

    async def submit_many(self, batch: Sequence[RawMessage]) -> list[Submission]:
        if self.fail_at is not None and len(self.batches) >= self.fail_at:
            raise BrokerUnavailable("the broker is down")
        self.batches.append([number_of(m.raw) for m in batch])
        return [Submission("accepted", f"id-{number_of(m.raw)}", m.kind) for m in batch]


async def test_a_large_file_is_held_a_window_of_batches_at_a_time_whatever_its_size(tmp_path: Path) -> None:
    write_avro(tmp_path / "big.avro", 30_000)
    intake = BatchIntake()
    ingester = Ingester(intake, source="s", batch=200, window=2)
    done = await ingester.run(open_bulk(tmp_path / "big.avro", "avro", None, "test.batch"))
    assert done.counts() == {"accepted": 30_000, "duplicate": 0, "rejected": 0} and done.state == "done"
    assert [n for b in intake.batches for n in b] == list(range(30_000))  # file order, each once
    assert {len(b) for b in intake.batches} == {200}
    assert 200 < ingester.peak_held <= 200 * 3  # a window of two in flight, one being read
    assert ingester.held == 0


async def test_a_run_stopped_by_the_broker_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    write_avro(tmp_path / "f.avro", 1_000)
    checkpoints = tmp_path / "state" / "ingest"
    bulk = open_bulk(tmp_path / "f.avro", "avro", None, "test.batch")
    with pytest.raises(BrokerUnavailable):
        await Ingester(BatchIntake(fail_at=3), source="s", checkpoints=checkpoints, batch=100, window=1).run(bulk)
    [saved] = [json.loads(p.read_text()) for p in checkpoints.glob("*.json")]
    assert (saved["done"], saved["accepted"], saved["state"]) == (300, 300, "failed")
    again = BatchIntake()
    done = await Ingester(again, source="s", checkpoints=checkpoints, batch=100).run(bulk)
    assert again.batches[0][0] == 300 and sum(map(len, again.batches)) == 700  # only what was not done
    assert (done.resumed_from, done.accepted, done.state) == (300, 1_000, "done")
    fresh = BatchIntake()  # done: the same file again starts over (and would answer duplicate)
    await Ingester(fresh, source="s", checkpoints=checkpoints, batch=100).run(bulk)
    assert sum(map(len, fresh.batches)) == 1_000


async def test_another_source_does_not_resume_a_files_checkpoint(tmp_path: Path) -> None:
    write_avro(tmp_path / "f.avro", 300)
    checkpoints = tmp_path / "ingest"
    bulk = open_bulk(tmp_path / "f.avro", "avro", None, "test.batch")
    with pytest.raises(BrokerUnavailable):
        await Ingester(BatchIntake(fail_at=1), source="a", checkpoints=checkpoints, batch=100).run(bulk)
    other = BatchIntake()
    await Ingester(other, source="b", checkpoints=checkpoints, batch=100).run(bulk)
    assert sum(map(len, other.batches)) == 300


def csv_file(catalog: Catalog, n: int, *, broken_row: int | None = None, control: bool = True) -> bytes:
    layout = Layout(catalog.get("jumin.idou"))
    rows = [layout.row(r) for r in sample_records("jumin.idou", catalog, seed=3, n=n)]
    if broken_row is not None:
        rows[broken_row - 2] = rows[broken_row - 2][:-1]  # a column short (row 1 is the header)
    data = encode_rows([layout.headers(), *rows], "utf-8")
    return data + control_record(data) if control else data


def test_a_csv_file_is_checked_whole_then_read_row_by_row_with_row_numbers(tmp_path: Path) -> None:
    catalog = Catalog.load()
    (tmp_path / "c.csv").write_bytes(csv_file(catalog, 6, broken_row=4))
    bulk = open_bulk(tmp_path / "c.csv", "csv", catalog, None)
    assert (bulk.total, bulk.kind, bulk.detail["encoding"]) == (6, "jumin.idou", "utf-8")
    items = list(bulk.items())
    assert [i.number for i in items] == [2, 3, 4, 5, 6, 7]
    [bad] = [i for i in items if i.raw is None]
    assert bad.number == 4 and bad.issue is not None and bad.issue.code == "R213"
    assert bad.issue.message.startswith("row 4: ")
    assert [i.number for i in bulk.items(skip=4)] == [6, 7]


def test_a_csv_file_that_disagrees_with_its_control_record_is_refused_whole(tmp_path: Path) -> None:
    catalog = Catalog.load()
    data = csv_file(catalog, 4)
    cut = data.split(b"\r\n")
    (tmp_path / "c.csv").write_bytes(b"\r\n".join(cut[:2] + cut[3:]))  # a data row gone
    with pytest.raises(CsvRefused) as refused:
        open_bulk(tmp_path / "c.csv", "csv", catalog, None)
    assert refused.value.code == "R214"


def test_a_csv_file_neither_utf8_nor_cp932_is_refused_whole(tmp_path: Path) -> None:
    catalog = Catalog.load()
    (tmp_path / "c.csv").write_bytes(csv_file(catalog, 2, control=False) + b"\xff\xff\xff\r\n")
    with pytest.raises(CsvRefused) as refused:
        open_bulk(tmp_path / "c.csv", "csv", catalog, None)
    assert refused.value.code == "R207"


def test_a_fixed_width_file_is_read_record_by_record(tmp_path: Path) -> None:
    catalog = Catalog.load()
    ks = catalog.get("jumin.idou")
    layout = FixedLayout(ks, catalog.codelists)
    records = list(sample_records("jumin.idou", catalog, seed=5, n=5))
    body = layout.encode(("", r) for r in records)
    (tmp_path / "f.dat").write_bytes(body + fixed_control(body))
    bulk = open_bulk(tmp_path / "f.dat", "fixed", catalog, None)
    assert bulk.total == 5
    items = list(bulk.items(skip=1))
    assert [i.number for i in items] == [2, 3, 4, 5] and all(i.raw for i in items)
    assert items[0].raw is not None and f">{records[1]['address_number']}<".encode() in items[0].raw


def test_progress_of_a_running_file_whose_process_is_gone_reads_interrupted(tmp_path: Path) -> None:
    folder = progress_dir(tmp_path)
    folder.mkdir()
    gone = IngestProgress("a.avro", "s", "avro", "k", "d1", 10, done=4, pid=2**22 + 12345)
    mine = IngestProgress("b.avro", "s", "avro", "k", "d2", 10, done=5, pid=os.getpid())
    old = IngestProgress("c.avro", "s", "avro", "k", "d3", 10, done=10, state="done", updated=0.0)
    for name, p in (("a", gone), ("b", mine), ("c", old)):
        (folder / f"{name}.json").write_text(json.dumps(p.to_dict()))
    found = {p.file: p.state for p in read_progress(tmp_path)}
    assert found == {"a.avro": "interrupted", "b.avro": "running"}  # a day-old finished file is not shown


def test_rate_and_eta_come_from_this_runs_records() -> None:
    p = IngestProgress("f", "s", "avro", "k", "d", 1000, done=600, resumed_from=100, started=10.0, updated=20.0)
    assert p.rate == 50.0 and p.eta == 8.0
    assert IngestProgress("f", "s", "avro", "k", "d", None, done=5).eta is None


async def test_a_batch_that_fails_stops_the_batches_after_it_so_order_is_kept(tmp_path: Path) -> None:
    """Before, the next batch in the window was submitted even when the one before it failed: sent
    again later, a resident's earlier change would have been published after a later one."""
    write_avro(tmp_path / "f.avro", 1_000)

    class FailsOnce(BatchIntake):
        def __init__(self) -> None:
            super().__init__()
            self.tried: list[int] = []

        async def submit_many(self, batch: Sequence[RawMessage]) -> list[Submission]:
            self.tried.append(number_of(batch[0].raw))
            await asyncio.sleep(0.01)  # a broker's confirm takes a moment: the next batch could start meanwhile
            if len(self.tried) == 2:
                raise BrokerUnavailable("the broker is down")
            return await super().submit_many(batch)

    intake = FailsOnce()
    bulk = open_bulk(tmp_path / "f.avro", "avro", None, "test.batch")
    with pytest.raises(BrokerUnavailable):
        await Ingester(intake, source="s", batch=100, window=3).run(bulk)
    assert intake.tried == [0, 100]  # nothing after the batch that failed


async def test_a_file_another_process_is_taking_is_refused_not_taken_twice(tmp_path: Path) -> None:
    write_avro(tmp_path / "f.avro", 50)
    bulk = open_bulk(tmp_path / "f.avro", "avro", None, "test.batch")
    checkpoints = tmp_path / "ingest"
    intake = BatchIntake()
    with Ingester(BatchIntake(), source="s", checkpoints=checkpoints).claimed(bulk):  # the other one, holding it
        with pytest.raises(IngestBusy, match="being ingested by another process"):
            await Ingester(intake, source="s", checkpoints=checkpoints).run(bulk)
    assert intake.batches == []
    await Ingester(intake, source="s", checkpoints=checkpoints).run(bulk)  # released: taken now
    assert sum(map(len, intake.batches)) == 50


def test_checkpoints_of_files_finished_a_week_ago_are_dropped_and_resumable_ones_kept(tmp_path: Path) -> None:
    from adapters.sources.ingest import KEEP_DONE, prune

    now = 1_800_000_000.0
    for name, state, age in (("old-done", "done", KEEP_DONE + 60), ("new-done", "done", 60),
                             ("old-failed", "failed", KEEP_DONE * 3)):
        p = IngestProgress(f"{name}.avro", "s", "avro", "k", name, 10, state=state, updated=now - age)
        (tmp_path / f"{name}.json").write_text(json.dumps(p.to_dict()))
        (tmp_path / f"{name}.lock").write_text("")
    assert prune(tmp_path, now=now) == ["old-done.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new-done.json", "new-done.lock", "old-failed.json",
                                                          "old-failed.lock"]


def test_a_csv_file_with_lf_line_ends_and_no_final_one_counts_every_row(tmp_path: Path) -> None:
    """Before, the total counted CRLF only: such a file showed 0 records to do (and passed the cap)."""
    catalog = Catalog.load()
    data = csv_file(catalog, 5, control=False).replace(b"\r\n", b"\n").rstrip(b"\n")
    (tmp_path / "c.csv").write_bytes(data)
    bulk = open_bulk(tmp_path / "c.csv", "csv", catalog, None)
    assert bulk.total == 5 and [i.number for i in bulk.items()] == [2, 3, 4, 5, 6]
    assert all(i.raw for i in bulk.items())


def test_a_row_whose_value_does_not_parse_is_rejected_naming_its_field_not_its_value(tmp_path: Path) -> None:
    catalog = Catalog.load()
    layout = Layout(catalog.get("jumin.idou"))
    rows = [layout.row(r) for r in sample_records("jumin.idou", catalog, seed=3, n=2)]
    at = layout.headers().index("異動日[change/effective_date]")
    rows[1][at] = "2025-13-45"
    (tmp_path / "c.csv").write_bytes(encode_rows([layout.headers(), *rows], "utf-8"))
    [bad] = [i for i in open_bulk(tmp_path / "c.csv", "csv", catalog, None).items() if i.issue]
    assert bad.number == 3 and bad.issue is not None
    assert (bad.issue.code, bad.issue.path) == ("R213", "/change/effective_date")
    assert "2025-13-45" not in bad.issue.message
