"""AuditRecorder: non-blocking appends from async code, written in batches, nothing lost."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bus.audit import AuditEvent, AuditLog, AuditRecorder, EventType, open_store, verify
from bus.errors import PersonalDataInAudit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import audit_cases as cases  # the contract suite's sample life of a message


async def test_emitted_events_are_all_written_after_flush(tmp_path: Path) -> None:
    """2,500 events emitted without awaiting: after flush they are all in one valid chain."""
    log = AuditLog(open_store(tmp_path / "a.sqlite"), cases.signer(), checkpoint_every=1000)
    recorder = AuditRecorder(log, max_batch=400, join_routed=False)  # a record per event (test_audit_fanout)
    for i in range(500):
        for event in cases.life(i + 1)[:5]:
            recorder.emit(event)
    await recorder.flush()
    assert recorder.pending == 0
    report = verify(log.store, cases.verifier_of(log.signer))  # type: ignore[arg-type]
    assert report.ok and report.records == 2500 and report.checkpoints == 2
    await recorder.aclose()
    log.close()


async def test_a_bad_event_raises_where_it_is_emitted(tmp_path: Path) -> None:
    """The guard runs in emit(), so the caller's mistake surfaces at the call site."""
    log = AuditLog(open_store(tmp_path / "a.sqlite"))
    recorder = AuditRecorder(log)
    with pytest.raises(PersonalDataInAudit):
        recorder.emit(AuditEvent(EventType.RECEIVED, subject=cases.ADDRESS_NUMBER))
    recorder.event(EventType.ACCEPTED, cases.envelope())
    await recorder.aclose()
    assert [r.event.event for r in log.store.records()] == [EventType.ACCEPTED]
    log.close()


async def test_an_event_emitted_after_an_idle_spell_is_written_without_a_flush(tmp_path: Path) -> None:
    """The writer wakes for the first event after its queue ran empty (a long-running bus
    never calls flush: events must reach the store within about max_delay)."""
    import asyncio

    log = AuditLog(open_store(tmp_path / "a.sqlite"))
    recorder = AuditRecorder(log, max_delay=0.02)
    recorder.event(EventType.ACCEPTED, cases.envelope())
    await recorder.flush()
    await asyncio.sleep(0.05)  # the writer is now idle, waiting
    recorder.event(EventType.ROUTED, cases.envelope())
    for _ in range(100):
        if recorder.pending == 0:
            break
        await asyncio.sleep(0.02)
    assert recorder.pending == 0
    assert [r.event.event for r in log.store.records()] == [EventType.ACCEPTED, EventType.ROUTED]
    await recorder.aclose()
    log.close()


async def test_the_tail_of_a_burst_is_signed_once_the_interval_passes(tmp_path: Path) -> None:
    """A burst written, then silence: within the interval the recorder signs the head on its own
    (not only at the next write or at shutdown), and the witness holds it."""
    import asyncio

    from bus.audit.witness import FileWitness

    witness = FileWitness(tmp_path / "witness.jsonl")
    log = AuditLog(open_store(tmp_path / "a.sqlite"), cases.signer(), checkpoint_every=1000,
                   checkpoint_interval=0.3, witness=witness)
    recorder = AuditRecorder(log, join_routed=False)  # a record per event: 7 per life
    for event in cases.life(1):
        recorder.emit(event)
    await recorder.flush()
    for event in cases.life(2):  # within the interval: not signed by the append
        recorder.emit(event)
    await recorder.flush()
    assert [c.seq for c in log.store.checkpoints()] == [7]
    await asyncio.sleep(0.8)
    assert [c.seq for c in log.store.checkpoints()] == [7, 14]
    assert [c.seq for c in witness.checkpoints()] == [7, 14]
    await recorder.aclose()
    log.close()
