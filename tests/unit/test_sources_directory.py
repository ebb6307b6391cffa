"""The directory source: complete files in, one answer per message, files moved, none lost."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import SCHEMAS, catalog, sample_record

from adapters.sources.directory import DirectorySource, Progress
from bus.errors import BrokerUnavailable, ConfigError
from bus.ports import Submission
from bus.validation.issues import Issue

SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "renkei.test_batch.v1.Row",
        "fields": [{"name": "n", "type": "int"}, {"name": "text", "type": "string"}],
    }
)


class FakeIntake:
    def __init__(self, answer: Callable[[bytes, str | None], Submission] | None = None) -> None:
        self.answer = answer or (lambda raw, kind: Submission("accepted", f"id-{len(self.calls)}", kind))
        self.calls: list[tuple[bytes, str, str, str | None]] = []

    async def submit(
        self, raw: bytes, *, content_type: str, source: str, kind: str | None = None
    ) -> Submission:
        self.calls.append((raw, content_type, source, kind))
        return self.answer(raw, kind)


def write_batch(path: Path, count: int, *, metadata: dict[str, str] | None = None) -> None:
    with path.open("wb") as fh:
        fastavro.writer(fh, SCHEMA, ({"n": i, "text": f"row {i}"} for i in range(count)), metadata=metadata)


def decode(raw: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(raw), SCHEMA, None)


def result_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".result.json").read_text())
    return data


async def test_accepted_files_go_to_processed_with_a_result_file(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes(b"<a/>")
    intake = FakeIntake()
    results = await DirectorySource(tmp_path, intake, source="kiban").run_once()
    assert [(r.name, r.status) for r in results] == [("a.xml", "processed")]
    assert (tmp_path / "processed" / "a.xml").read_bytes() == b"<a/>"
    assert result_of(tmp_path / "processed" / "a.xml")["message_id"] == "id-1"
    assert intake.calls == [(b"<a/>", "application/xml", "kiban", None)]
    assert not (tmp_path / "a.xml").exists()


async def test_rejected_files_go_to_rejected_with_their_issues(tmp_path: Path) -> None:
    (tmp_path / "bad.xml").write_bytes(b"<bad")

    def reject(raw: bytes, kind: str | None) -> Submission:
        return Submission("rejected", kind=kind, issues=(Issue("R200", "not well-formed", line=1, column=5),))

    await DirectorySource(tmp_path, FakeIntake(reject)).run_once()
    result = result_of(tmp_path / "rejected" / "bad.xml")
    assert result["status"] == "rejected"
    assert result["issues"] == [
        {"code": "R200", "message": "not well-formed", "path": "", "line": 1, "column": 5}
    ]


async def test_files_still_being_written_are_left_alone(tmp_path: Path) -> None:
    for name in (".a.xml", "b.xml.tmp", "c.xml.part", "d.xml~", "e.txt"):
        (tmp_path / name).write_bytes(b"<x/>")
    (tmp_path / "sub.xml").mkdir()
    intake = FakeIntake()
    assert await DirectorySource(tmp_path, intake).run_once() == []
    assert intake.calls == []


async def test_with_the_broker_down_files_stay_in_the_inbox(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes(b"<a/>")
    (tmp_path / "b.xml").write_bytes(b"<b/>")

    def down(raw: bytes, kind: str | None) -> Submission:
        raise BrokerUnavailable("no connection")

    intake = FakeIntake(down)
    results = await DirectorySource(tmp_path, intake).run_once()
    assert [r.status for r in results] == ["retry"] and len(intake.calls) == 1
    assert (tmp_path / "a.xml").exists() and (tmp_path / "b.xml").exists()


async def test_a_file_submitted_again_is_a_duplicate_and_never_overwrites(tmp_path: Path) -> None:
    answers = iter([Submission("accepted", "m1"), Submission("duplicate", "m1")])
    source = DirectorySource(tmp_path, FakeIntake(lambda raw, kind: next(answers)))
    for _ in range(2):  # the producer dropped the same file twice (or we crashed before the move)
        (tmp_path / "a.xml").write_bytes(b"<a/>")
        await source.run_once()
    kept = sorted(p.name for p in (tmp_path / "processed").iterdir() if not p.name.endswith(".json"))
    assert len(kept) == 2 and "a.xml" in kept
    statuses = sorted(result_of(tmp_path / "processed" / n)["status"] for n in kept)
    assert statuses == ["processed", "processed"]


async def test_an_oversized_xml_file_is_passed_on_truncated_for_the_bus_to_reject(tmp_path: Path) -> None:
    (tmp_path / "big.xml").write_bytes(b"x" * 100)
    intake = FakeIntake()
    await DirectorySource(tmp_path, intake, max_size=10).run_once()
    assert len(intake.calls[0][0]) == 11


async def test_an_avro_batch_submits_each_record_and_reports_progress(tmp_path: Path) -> None:
    write_batch(tmp_path / "batch.avro", 2500)
    seen: list[tuple[int, int]] = []
    intake = FakeIntake()
    source = DirectorySource(
        tmp_path,
        intake,
        pattern=["*.xml", "*.avro"],
        kind="test.batch",
        progress=lambda p: seen.append((p.done, p.total)),
        progress_every=1000,
    )
    [result] = await source.run_once()
    assert result.status == "processed" and result.counts == {"accepted": 2500, "duplicate": 0, "rejected": 0}
    assert seen == [(1000, 2500), (2000, 2500), (2500, 2500)]
    assert [decode(raw)["n"] for raw, *_ in intake.calls] == list(range(2500))
    assert {(ct, kind) for _, ct, _, kind in intake.calls} == {("application/avro", "test.batch")}
    assert result_of(tmp_path / "processed" / "batch.avro")["records"] == 2500


async def test_a_batch_with_rejected_records_goes_to_rejected_with_a_summary(tmp_path: Path) -> None:
    write_batch(tmp_path / "batch.avro", 5)

    def answer(raw: bytes, kind: str | None) -> Submission:
        n = decode(raw)["n"]
        return (
            Submission("rejected", issues=(Issue("R401", "check digit"),))
            if n == 3
            else Submission("accepted")
        )

    await DirectorySource(tmp_path, FakeIntake(answer), pattern="*.avro", kind="test.batch").run_once()
    result = result_of(tmp_path / "rejected" / "batch.avro")
    assert result["counts"] == {"accepted": 4, "duplicate": 0, "rejected": 1}
    assert result["rejected_records"] == [
        {"record": 3, "issues": [{"code": "R401", "message": "check digit", "path": ""}]}
    ]


async def test_the_kind_comes_from_metadata_or_the_schema_namespace(tmp_path: Path) -> None:
    write_batch(tmp_path / "a.avro", 1, metadata={"renkei.kind": "portal.shinsei"})
    write_batch(tmp_path / "b.avro", 1)
    intake = FakeIntake()
    await DirectorySource(tmp_path, intake, pattern="*.avro").run_once()
    assert [kind for *_, kind in intake.calls] == ["portal.shinsei", "test.batch"]


async def test_a_batch_over_the_record_cap_is_rejected_untouched(tmp_path: Path) -> None:
    write_batch(tmp_path / "batch.avro", 11)
    intake = FakeIntake()
    await DirectorySource(tmp_path, intake, pattern="*.avro", kind="k", max_records=10).run_once()
    assert intake.calls == []
    assert result_of(tmp_path / "rejected" / "batch.avro")["issues"][0]["code"] == "R100"


async def test_a_truncated_container_is_rejected(tmp_path: Path) -> None:
    write_batch(tmp_path / "whole.avro", 50)
    (tmp_path / "cut.avro").write_bytes((tmp_path / "whole.avro").read_bytes()[:-30])
    (tmp_path / "whole.avro").unlink()
    (tmp_path / "junk.avro").write_bytes(b"Obj\x01garbage")
    await DirectorySource(tmp_path, FakeIntake(), pattern="*.avro", kind="k").run_once()
    assert {p.name for p in (tmp_path / "rejected").glob("*.avro")} == {"cut.avro", "junk.avro"}
    assert result_of(tmp_path / "rejected" / "junk.avro")["issues"][0]["code"] in ("R210", "R212")


@pytest.mark.skipif(catalog() is None, reason="the schema catalog is not loadable here")
async def test_with_a_catalog_records_are_reencoded_with_the_kinds_schema(tmp_path: Path) -> None:
    from bus.validation.validator import validate

    cat = catalog()
    ks = cat.get("jumin.idou")
    names = [p.stem for p in sorted((SCHEMAS / "jumin.idou" / "1" / "samples" / "valid").glob("*.xml"))]
    with (tmp_path / "extract.avro").open("wb") as fh:
        fastavro.writer(fh, ks.avro_schema, [sample_record("jumin.idou", n) for n in names])

    def check(raw: bytes, kind: str | None) -> Submission:
        validated = validate(raw, content_type="application/avro", kind=kind, catalog=cat)
        return Submission("accepted", kind=validated.kind_schema.kind)

    [result] = await DirectorySource(tmp_path, FakeIntake(check), pattern="*.avro", catalog=cat).run_once()
    assert result.counts["accepted"] == len(names) and result.status == "processed"


async def test_run_polls_until_stopped(tmp_path: Path) -> None:
    intake = FakeIntake()
    source = DirectorySource(tmp_path, intake, poll=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    (tmp_path / "late.xml").write_bytes(b"<a/>")
    for _ in range(200):
        if intake.calls:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert len(intake.calls) == 1


def test_progress_has_a_rate() -> None:
    assert Progress("f", 10, 20).rate > 0


def test_an_inbox_that_is_not_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        DirectorySource(tmp_path / "missing", FakeIntake())


def _refusal(inbox: Path, name: str) -> str:
    result = json.loads((inbox / "rejected" / f"{name}.result.json").read_text())
    assert result["status"] == "rejected" and result["issues"][0]["code"] == "R230"
    return str(result["issues"][0]["message"])


async def test_a_symbolic_link_is_refused_unread_wherever_it_points(tmp_path: Path) -> None:
    """A link to a host file, or to a file inside the inbox: neither is read, neither kept."""
    inbox, outside = tmp_path / "inbox", tmp_path / "secret.xml"
    inbox.mkdir()
    outside.write_bytes(b"<secret>host file</secret>")
    (inbox / "a-outside.xml").symlink_to(outside)
    (inbox / "b-inside.xml").symlink_to(inbox / "real.data")
    (inbox / "real.data").write_bytes(b"<a/>")
    intake = FakeIntake()
    results = await DirectorySource(inbox, intake).run_once()
    assert [(r.name, r.status) for r in results] == [("a-outside.xml", "rejected"), ("b-inside.xml", "rejected")]
    assert intake.calls == []
    assert "symbolic link" in _refusal(inbox, "a-outside.xml") and "symbolic link" in _refusal(inbox, "b-inside.xml")
    kept = b"".join(p.read_bytes() for p in (inbox / "rejected").rglob("*") if p.is_file())
    assert b"host file" not in kept
    assert not (inbox / "a-outside.xml").is_symlink() and outside.read_bytes() == b"<secret>host file</secret>"


async def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.xml")
    intake = FakeIntake()
    results = await asyncio.wait_for(DirectorySource(tmp_path, intake).run_once(), 5)
    assert [(r.name, r.status) for r in results] == [("pipe.xml", "rejected")]
    assert "FIFO" in _refusal(tmp_path, "pipe.xml") and intake.calls == []
    assert not (tmp_path / "pipe.xml").exists()


async def test_a_socket_and_a_hard_link_are_refused(tmp_path: Path) -> None:
    import os
    import socket

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(inbox / "sock.xml"))
    (tmp_path / "elsewhere.xml").write_bytes(b"<elsewhere/>")
    os.link(tmp_path / "elsewhere.xml", inbox / "linked.xml")
    intake = FakeIntake()
    try:
        results = await DirectorySource(inbox, intake).run_once()
    finally:
        server.close()
    assert {(r.name, r.status) for r in results} == {("sock.xml", "rejected"), ("linked.xml", "rejected")}
    assert "socket" in _refusal(inbox, "sock.xml") and "hard link" in _refusal(inbox, "linked.xml")
    assert intake.calls == [] and (tmp_path / "elsewhere.xml").read_bytes() == b"<elsewhere/>"


def test_a_device_is_not_a_regular_file() -> None:
    from adapters.sources.inbox_files import not_regular

    assert not_regular(Path("/dev/null")) == "a character device"


async def test_a_file_swapped_for_a_link_after_the_scan_is_refused_when_opened(tmp_path: Path) -> None:
    """The check and the open are separate: O_NOFOLLOW refuses a link put there in between."""
    from adapters.sources.inbox_files import Refused, open_regular

    (tmp_path / "host.txt").write_bytes(b"host")
    (tmp_path / "x.xml").symlink_to(tmp_path / "host.txt")
    with pytest.raises(Refused, match="symbolic link"):
        open_regular(tmp_path / "x.xml")


async def test_a_slow_batch_reports_progress_every_few_seconds_not_only_every_n_records(tmp_path: Path) -> None:
    """Before, progress came only every `progress_every` (10,000) records: a slow batch said nothing."""
    write_batch(tmp_path / "batch.avro", 30)
    seen: list[int] = []

    class SlowIntake(FakeIntake):
        async def submit(self, raw: bytes, *, content_type: str, source: str, kind: str | None = None) -> Submission:
            await asyncio.sleep(0.02)
            return await super().submit(raw, content_type=content_type, source=source, kind=kind)

    source = DirectorySource(tmp_path, SlowIntake(), pattern="*.avro", kind="test.batch",
                             progress=lambda p: seen.append(p.done), progress_seconds=0.1)
    await source.run_once()
    assert seen[-1] == 30 and len(seen) >= 3 and seen == sorted(seen)  # several before the end, in order


async def test_an_inbox_file_interrupted_by_the_broker_continues_from_its_checkpoint(tmp_path: Path) -> None:
    from adapters.sources.ingest import BATCH

    write_batch(tmp_path / "batch.avro", BATCH * 3 + 7)
    checkpoints = tmp_path / "state" / "ingest"

    class FailingOnce(FakeIntake):
        async def submit(self, raw: bytes, *, content_type: str, source: str, kind: str | None = None) -> Submission:
            if len(self.calls) == BATCH * 2:
                raise BrokerUnavailable("down")
            return await super().submit(raw, content_type=content_type, source=source, kind=kind)

    first = FailingOnce()
    source = DirectorySource(tmp_path, first, pattern="*.avro", kind="test.batch", checkpoints=checkpoints)
    [result] = await source.run_once()
    assert result.status == "retry" and (tmp_path / "batch.avro").exists()
    again = FakeIntake()
    source = DirectorySource(tmp_path, again, pattern="*.avro", kind="test.batch", checkpoints=checkpoints)
    [result] = await source.run_once()
    assert result.status == "processed" and result.detail["resumed_from"] == BATCH * 2
    assert [decode(raw)["n"] for raw, *_ in again.calls] == list(range(BATCH * 2, BATCH * 3 + 7))
    assert result.counts["accepted"] == BATCH * 3 + 7


async def test_an_inbox_file_that_renkei_ingest_is_taking_is_left_for_a_later_poll(tmp_path: Path) -> None:
    from adapters.sources.bulk import open_bulk
    from adapters.sources.ingest import Ingester

    write_batch(tmp_path / "batch.avro", 10)
    checkpoints = tmp_path / "state" / "ingest"
    intake = FakeIntake()
    source = DirectorySource(tmp_path, intake, pattern="*.avro", kind="test.batch", source="kiban",
                             checkpoints=checkpoints)
    bulk = open_bulk(tmp_path / "batch.avro", "avro", None, "test.batch")
    with Ingester(FakeIntake(), source="kiban", checkpoints=checkpoints).claimed(bulk):
        [result] = await source.run_once()
    assert result.status == "retry" and intake.calls == [] and (tmp_path / "batch.avro").exists()
    [result] = await source.run_once()
    assert result.status == "processed" and len(intake.calls) == 10
