"""A message's life reads in the order it happened, not in the order its events were written.

With the bus in several processes (the demo's default), each process's recorder writes its
own batches: the router may write a change's `routed` before the intake's batch holding its
`received` and `accepted` reaches the store (CI saw the life [routed, routed, …, received,
accepted, …]). `renkei audit show`, the console's message page and an auditor read
AuditLog.life, which must give the life as it happened.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from bus.audit import AuditLog, EventType, open_store, verify

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import audit_cases as cases  # the contract suite's sample life of a message


def test_a_life_written_out_of_order_by_two_processes_reads_in_the_order_it_happened(tmp_path: Path) -> None:
    life = [dataclasses.replace(e, at=f"2026-12-06T10:00:00.{i:06d}+00:00") for i, e in enumerate(cases.life(1))]
    intake, rest = life[:2], life[2:]  # received, accepted | routed ×2, delivered, retried, delivered
    log = AuditLog(open_store(tmp_path / "a.sqlite"))
    try:
        log.append(rest[:2])  # the router's batch reaches the store first
        log.append(intake)
        log.append(rest[2:])
        assert [r.event.event for r in log.store.records()][:4] == [EventType.ROUTED, EventType.ROUTED,
                                                                  EventType.RECEIVED, EventType.ACCEPTED]
        assert verify(log.store).ok  # the chain is in write order, and that is still a valid chain
        assert [r.event for r in log.life(life[0].message_id or "")] == life
    finally:
        log.close()


def test_events_of_the_same_instant_keep_their_written_order(tmp_path: Path) -> None:
    """Two events with one timestamp (one process, the clock's resolution) stay as written."""
    life = [dataclasses.replace(e, at="2026-12-06T10:00:00.000000+00:00") for e in cases.life(1)]
    log = AuditLog(open_store(tmp_path / "a.sqlite"))
    try:
        log.append(life)
        assert [r.event for r in log.life(life[0].message_id or "")] == life
    finally:
        log.close()
