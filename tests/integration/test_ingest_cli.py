"""`renkei ingest FILE` as a user runs it, on the embedded broker: every row answered, bad rows
rejected with their row and field (never a value) without stopping the file, progress lines off
a terminal, the progress where `renkei status` reads it, and the same file again all duplicate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import fastavro
import pytest
from processes import bus_env

from adapters.transports.csv_layout import Layout, control_record, encode_rows
from bus.catalog import Catalog
from bus.synthetic.samples import sample_records

pytestmark = pytest.mark.integration
KEY = "ingest-cli-test-pseudonym-key-0001"


def renkei_ingest(tmp_path: Path, *args: str, command: str = "ingest") -> subprocess.CompletedProcess[str]:
    env = {**bus_env(KEY), "RENKEI_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run([sys.executable, "-m", "bus.cli", command, *args], env=env, capture_output=True,
                          text=True, timeout=180, cwd=tmp_path)


def bad_csv(catalog: Catalog, n: int) -> tuple[bytes, str]:
    """A CSV of `n` changes: row 5 a column short, row 9 a 個人番号 with a wrong check digit (returned)."""
    layout = Layout(catalog.get("jumin.idou"))
    records: list[dict[str, Any]] = list(sample_records("jumin.idou", catalog, seed=21, n=n))
    number = records[7]["personal_number"]
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    records[7] = {**records[7], "personal_number": wrong}
    rows = [layout.row(r) for r in records]
    rows[3] = rows[3][:-1]
    data = encode_rows([layout.headers(), *rows], "utf-8")
    return data + control_record(data), wrong


def test_bad_rows_are_rejected_with_row_and_field_and_the_rest_of_the_file_goes_in(tmp_path: Path) -> None:
    catalog = Catalog.load()
    data, wrong = bad_csv(catalog, 40)
    (tmp_path / "changes.csv").write_bytes(data)
    first = renkei_ingest(tmp_path, "changes.csv", "--every", "0.1")
    assert first.returncode == 3, first.stderr
    out = first.stdout + first.stderr
    assert "accepted 38, duplicate 0, rejected 2" in first.stdout
    assert "rejected R213 at /: 1 (rows 5)" in first.stdout
    assert any(line.startswith("  rejected R") and "(rows 9)" in line and "personal_number" in line
               for line in first.stdout.splitlines()), first.stdout
    assert "ingesting changes.csv: 40/40 records" in first.stderr and "ETA" in first.stderr
    assert wrong not in out  # where and which field, never the value
    [saved] = [json.loads(p.read_text()) for p in (tmp_path / "state" / "ingest").glob("*.json")]
    assert (saved["state"], saved["done"], saved["total"], saved["accepted"]) == ("done", 40, 40, 38)
    status = json.loads(renkei_ingest(tmp_path, "--json", command="status").stdout)
    [shown] = status["ingests"]
    assert (shown["file"], shown["state"], shown["done"], shown["rejected"]) == ("changes.csv", "done", 40, 2)
    again = renkei_ingest(tmp_path, "changes.csv", "--json")
    result = json.loads(again.stdout)
    assert again.returncode == 3 and result["counts"] == {"accepted": 0, "duplicate": 38, "rejected": 2}
    assert [(r["code"], r["rows"]) for r in result["rejected"] if r["code"] == "R213"] == [("R213", [5])]


def test_a_file_rejected_as_a_whole_submits_nothing_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "wrong.csv").write_bytes("氏名,住所\r\n".encode("cp932"))
    done = renkei_ingest(tmp_path, "wrong.csv")
    assert done.returncode == 3 and "rejected as a whole: R213" in done.stdout
    assert not (tmp_path / "state" / "ingest").exists()


def test_a_file_of_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"\x00")
    done = renkei_ingest(tmp_path, "x.bin")
    assert done.returncode == 2 and "--format" in done.stderr


def test_ingest_into_rabbitmq_leaves_every_record_on_the_intake_queue(tmp_path: Path, amqp_vhost_url: str) -> None:
    catalog = Catalog.load()
    records = list(sample_records("jumin.idou", catalog, seed=22, n=120))
    with (tmp_path / "extract.avro").open("wb") as fh:
        fastavro.writer(fh, catalog.get("jumin.idou").avro_schema, records, metadata={"renkei.kind": "jumin.idou"})
    done = renkei_ingest(tmp_path, "extract.avro", "--broker-url", amqp_vhost_url, "--batch", "50", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"] == {"accepted": 120, "duplicate": 0, "rejected": 0}
    status = json.loads(subprocess.run(
        [sys.executable, "-m", "bus.cli", "status", "--json"], capture_output=True, text=True, timeout=120,
        cwd=tmp_path, env={**bus_env(KEY), "RENKEI_STATE_DIR": str(tmp_path / "state"),
                           "RENKEI_BROKER_URL": amqp_vhost_url}).stdout)
    assert status["broker"]["name"] == "amqp" and status["queues"]["intake"]["ready"] == 120
    assert [(i["file"], i["state"], i["accepted"]) for i in status["ingests"]] == [("extract.avro", "done", 120)]
