"""`renkei status` shows the bulk files being ingested (records done of the total, rate, ETA,
state), from the checkpoints in the state directory; a file whose process is gone is
`interrupted`; counts only, never a record's detail."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from bus.cli.status import render_json, render_table
from bus.settings import Settings
from bus.status import IngestProgress, gather_status, progress_dir


def write(state_dir: Path, name: str, p: IngestProgress) -> None:
    folder = progress_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(p.to_dict()), encoding="utf-8")


def test_status_lists_each_bulk_file_with_its_progress_rate_and_eta(tmp_path: Path) -> None:
    settings = Settings.load(None, env={"RENKEI_STATE_DIR": str(tmp_path / "var")})
    state_dir = settings.bus.state_dir
    now = 1_800_000_000.0
    running = IngestProgress("extract.avro", "kiban", "avro", "jumin.idou", "d1", 100_000, done=40_000,
                             accepted=39_990, rejected=10, started=now - 20, updated=now, pid=os.getpid(),
                             rejected_records=[{"record": 7, "issues": [{"code": "R401", "path": "/x"}]}])
    killed = IngestProgress("changes.csv", "kiban", "csv", "jumin.idou", "d2", 500, done=200, accepted=200,
                            started=now - 10, updated=now, pid=2**22 + 4321)
    write(state_dir, "a", running)
    write(state_dir, "b", killed)
    report = asyncio.run(gather_status(settings, []))
    data = json.loads(render_json(report))
    by_file = {i["file"]: i for i in data["ingests"]}
    assert by_file["extract.avro"]["state"] == "running" and by_file["changes.csv"]["state"] == "interrupted"
    avro = by_file["extract.avro"]
    assert (avro["done"], avro["total"], avro["rate_per_second"], avro["eta_seconds"]) == (40_000, 100_000,
                                                                                           2000.0, 30.0)
    assert "rejected_records" not in avro and "issues" not in json.dumps(data["ingests"])
    table = render_table(report)
    assert "BULK FILE" in table
    [line] = [x for x in table.splitlines() if x.startswith("extract.avro")]
    assert line.split()[:6] == ["extract.avro", "kiban", "running", "40000", "100000", "2000.0"]
    assert "0:00:30" in line


def test_without_bulk_files_the_table_has_no_bulk_file_section(tmp_path: Path) -> None:
    settings = Settings.load(None, env={"RENKEI_STATE_DIR": str(tmp_path / "var")})
    report = asyncio.run(gather_status(settings, []))
    assert "BULK FILE" not in render_table(report) and json.loads(render_json(report))["ingests"] == []
