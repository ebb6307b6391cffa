"""Strict, incremental, cached verification for /readyz (bus.audit.watch): only what follows the
last good checkpoint is read again, a tampered store is named without an id, an unproven
chain is not ready under strict."""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path

from bus.audit import AuditLog, open_store
from bus.audit.watch import ChainWatch
from bus.audit.witness import FileWitness

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import audit_cases as cases  # the contract suite's sample life of a message


def _log(tmp_path: Path, *, signed: bool = True, witnessed: bool = True) -> AuditLog:
    return AuditLog(open_store(tmp_path / "audit.sqlite"), cases.signer() if signed else None, checkpoint_every=5,
                    witness=FileWitness(tmp_path / "witness.jsonl") if witnessed else None)


def _watch(log: AuditLog, strict: bool = True) -> ChainWatch:
    """A watch that opens the trail afresh for each check (and closes it), as the monitor's does."""
    path = Path(log.store.location.removeprefix("sqlite:///"))
    return ChainWatch(lambda: AuditLog(open_store(path), log.signer, witness=log.witness), strict=strict)


def _checked(tmp_path: Path) -> tuple[AuditLog, ChainWatch]:
    """A signed, witnessed trail of one message's life, and a watch that has checked it once (OK)."""
    log = _log(tmp_path)
    log.append(cases.life(1))
    log.checkpoint()
    watch = _watch(log)
    first = watch.check()
    assert first.ok and first.reason == "ok" and first.report.records == log.store.head().seq
    return log, watch


def _tamper(path: Path, sql: str, params: tuple[object, ...]) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER IF EXISTS audit_records_no_update")
    db.execute(sql, params)
    db.close()


def test_a_later_check_reads_only_what_follows_the_last_good_checkpoint(tmp_path: Path) -> None:
    log, watch = _checked(tmp_path)
    log.append(cases.life(2))
    log.checkpoint()
    second = watch.check()
    assert second.ok and second.report.records == 1 + len(cases.life(2))  # the anchor and what follows it


def test_a_check_within_max_age_is_the_cached_verdict(tmp_path: Path) -> None:
    log, watch = _checked(tmp_path)
    first = watch.last
    _tamper(tmp_path / "audit.sqlite", "UPDATE audit_records SET destination = 'x' WHERE seq = ?",
            (log.store.head().seq,))
    assert watch.check(max_age=60) is first
    assert not watch.check(max_age=0).ok


def test_a_record_altered_after_the_anchor_breaks_it_named_by_seq_without_ids(tmp_path: Path) -> None:
    log, watch = _checked(tmp_path)
    records = log.append(cases.life(2))
    _tamper(tmp_path / "audit.sqlite", "UPDATE audit_records SET destination = 'x' WHERE seq = ?", (records[1].seq,))
    verdict = watch.check()
    assert not verdict.ok and verdict.broken
    assert verdict.reason.startswith(f"broken at record {records[1].seq}: was altered")
    assert not re.search(r"[0-9a-f]{32}", verdict.reason)  # the message id the verify report names is left out
    assert not watch.check().ok  # the anchor stays where it was: found again


def test_a_chain_without_a_key_or_a_witness_is_not_ready_when_strict(tmp_path: Path) -> None:
    log = _log(tmp_path, signed=False, witnessed=False)
    log.append(cases.life(1))
    verdict = _watch(log).check()
    assert not verdict.ok and not verdict.broken
    assert verdict.reason.startswith("not proven: ") and "signing_key_file" in verdict.reason
    assert "no witness" in verdict.reason
    assert _watch(log, strict=False).check().ok


def test_an_incremental_check_still_sees_the_store_cut_short(tmp_path: Path) -> None:
    """A witnessed checkpoint past the store's end (rolled back): caught after the anchor too."""
    log, watch = _checked(tmp_path)
    log.append(cases.life(2))
    log.checkpoint()
    head = log.store.checkpoints()[-1]
    db = sqlite3.connect(tmp_path / "audit.sqlite", isolation_level=None)
    for trigger in ("audit_records_no_delete", "audit_checkpoints_no_delete"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    first_new = len(cases.life(1)) + 1
    db.execute("DELETE FROM audit_records WHERE seq >= ?", (first_new,))
    db.execute("DELETE FROM audit_checkpoints WHERE seq >= ?", (first_new,))
    db.execute("UPDATE audit_head SET seq = ?, hash = (SELECT hash FROM audit_records WHERE seq = ?)",
               (first_new - 1, first_new - 1))
    db.close()
    verdict = watch.check()
    assert verdict.broken and "witness holds a checkpoint" in verdict.reason and str(head.seq) in verdict.reason


def test_records_appended_while_a_verification_walks_do_not_break_it(tmp_path: Path) -> None:
    """A running bus writes while /readyz verifies: the walk takes the new records in, it does not
    report the head past its end as records removed."""
    from bus.audit import verify

    log = _log(tmp_path)
    log.append(cases.life(1))
    log.checkpoint()
    store, read_page = log.store, log.store.page
    written: list[object] = []

    def page(after: int, limit: int) -> list:  # type: ignore[type-arg]
        found = read_page(after, limit)
        if not written:
            written.append(log.append(cases.life(2)))  # meanwhile, the bus appends
        return found

    store.page = page  # type: ignore[method-assign]
    assert log.signer is not None
    report = verify(store, cases.verifier_of(log.signer), witness=log.witness, interval=5)
    assert written and report.ok, report.problems
    assert report.head_seq == report.records == len(cases.life(1)) + len(cases.life(2))


def test_a_trail_without_checkpoints_is_not_walked_whole_at_every_check(tmp_path: Path) -> None:
    """No signing key: no checkpoint to start from, so the watch goes on from the head it verified
    (and still says the chain is not proven)."""
    log = _log(tmp_path, signed=False, witnessed=False)
    log.append(cases.life(1))
    watch = _watch(log, strict=False)
    assert watch.check().report.records == len(cases.life(1))
    log.append(cases.life(2))
    later = watch.check()
    assert later.ok and later.report.records == 1 + len(cases.life(2))
    assert any("no signed checkpoints" in what for what in later.report.unproven)
    log.append(cases.life(3))
    assert watch.check().report.records == 1 + len(cases.life(3))  # the anchor moved on again
    _tamper(tmp_path / "audit.sqlite", "UPDATE audit_records SET destination = 'x' WHERE seq = ?",
            (log.store.head().seq,))
    assert watch.check().broken
