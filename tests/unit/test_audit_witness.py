"""The file witness: every checkpoint appended, a crash's partial line skipped, a forged or
altered witnessed checkpoint named, and a failing witness never stopping the trail."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from bus.audit import AuditLog, open_store, verify
from bus.audit.witness import FileWitness, open_witness
from bus.errors import AuditStoreError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import audit_cases as cases  # the contract suite's sample life of a message


def test_a_partial_last_line_is_skipped_and_a_broken_middle_line_is_named(tmp_path: Path) -> None:
    witness = FileWitness(tmp_path / "w.jsonl")
    log = AuditLog(open_store(tmp_path / "a.sqlite"), cases.signer(), checkpoint_every=7, witness=witness)
    log.append(cases.life(1))
    with witness.path.open("a", encoding="utf-8") as fh:
        fh.write('{"seq": 14, "hash"')  # killed while appending
    assert [c.seq for c in witness.checkpoints()] == [7]
    witness.path.write_text("garbage\n" + witness.path.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(AuditStoreError, match=r"w\.jsonl:1"):
        witness.checkpoints()


def test_a_forged_witnessed_checkpoint_is_named(tmp_path: Path) -> None:
    key = cases.signer()
    witness = FileWitness(tmp_path / "w.jsonl")
    log = AuditLog(open_store(tmp_path / "a.sqlite"), key, checkpoint_every=7, witness=witness)
    log.append(cases.life(1))
    [checkpoint] = witness.checkpoints()
    forged = replace(checkpoint, seq=9, hash="f" * 64)
    with witness.path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(forged)) + "\n")
    report = verify(log.store, cases.verifier_of(key), witness=witness)
    assert report.first is not None and "witnessed checkpoint" in report.first.what
    assert "does not verify" in report.first.what


def test_a_witness_that_cannot_be_written_does_not_stop_the_trail(tmp_path: Path) -> None:
    """The checkpoint is in the store; verify notes that the witness is behind."""
    (tmp_path / "not-a-dir").write_text("x", encoding="utf-8")
    witness = FileWitness(tmp_path / "not-a-dir" / "w.jsonl")
    key = cases.signer()
    log = AuditLog(open_store(tmp_path / "a.sqlite"), key, checkpoint_every=7, witness=witness)
    log.append(cases.life(1))
    assert [c.seq for c in log.store.checkpoints()] == [7]
    report = verify(log.store, cases.verifier_of(key), witness=FileWitness(tmp_path / "empty.jsonl"))
    assert report.ok and any("witness is behind" in note for note in report.notes)


def test_an_unknown_witness_scheme_is_refused() -> None:
    with pytest.raises(AuditStoreError, match="unknown audit witness"):
        open_witness("s3://bucket/witness")
