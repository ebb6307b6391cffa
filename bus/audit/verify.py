"""Verify a trail: walk the chain once, check every checkpoint, name the first broken record.

What is found, and how it is named (`Problem.seq` is the record to look at):

- altered: a record's content no longer gives its hash;
- missing: the sequence jumps (a record was removed), or ends before the head or a checkpoint;
- out of place: a record's prev_hash is not the hash of the record before it (records
  removed and renumbered, inserted, or reordered);
- a checkpoint whose signature does not verify (forged, altered, or by an unknown key), or
  whose hash is not the chain's hash at its seq (the chain was rewritten before it).

Records after the last checkpoint are protected by the chain alone: someone who can write
the database could rewrite them consistently. `Report.unsigned` says how many there are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bus.audit.chain import GENESIS
from bus.audit.signing import Checkpoint, CheckpointVerifier
from bus.audit.store import AuditStore

__all__ = ["Problem", "Report", "check_checkpoints", "verify"]


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.what}"


@dataclass(slots=True)
class Report:
    records: int = 0
    head_seq: int = 0
    checkpoints: int = 0
    last_checkpoint: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        """The first broken record (the lowest seq with a problem)."""
        return min(self.problems, key=lambda p: p.seq) if self.problems else None

    @property
    def unsigned(self) -> int:
        """Records after the last checkpoint."""
        return max(self.head_seq - self.last_checkpoint, 0)


def verify(store: AuditStore, verifier: CheckpointVerifier | None = None) -> Report:
    """Check the whole trail; without a verifier, checkpoint signatures are not checked
    (their hashes still are)."""
    report = Report()
    checkpoints = store.checkpoints()
    wanted = {c.seq for c in checkpoints}
    hashes: dict[int, str] = {}
    expected, prev = 1, GENESIS
    for record in store.records():
        report.records += 1
        if record.seq != expected:
            gap = f"{expected}" if record.seq == expected + 1 else f"{expected}–{record.seq - 1}"
            what = f"is missing (record{'s' if '–' in gap else ''} {gap} removed: the sequence goes from " \
                   f"{expected - 1} to {record.seq})"
            report.problems.append(Problem(expected, what))
        elif record.prev_hash != prev:
            what = f"does not follow record {record.seq - 1}: its prev_hash is not that record's hash " \
                   "(records removed, inserted or reordered)"
            report.problems.append(Problem(record.seq, what))
        elif record.computed_hash != record.hash:
            report.problems.append(Problem(record.seq, f"was altered: its content no longer matches its hash "
                                                       f"({record.event.event} of message {record.event.message_id})"))
        if record.seq in wanted:
            hashes[record.seq] = record.hash
        expected, prev = record.seq + 1, record.hash
    last = expected - 1
    head = store.head()
    report.head_seq = head.seq
    if head.seq > last:
        report.problems.append(Problem(last + 1, f"is missing: the trail ends at {last} but its head is at {head.seq} "
                                                 "(records removed from the end)"))
    elif head.seq != last or (last and head.hash != prev):
        report.problems.append(Problem(last, f"does not match the head (seq {head.seq}): the head was altered"))
    check_checkpoints(report, checkpoints, hashes, verifier)
    return report


def check_checkpoints(report: Report, checkpoints: Sequence[Checkpoint], hashes: Mapping[int, str],
                      verifier: CheckpointVerifier | None) -> None:
    """Add to `report` every checkpoint whose signature does not verify, or whose hash is not
    the chain's hash at its seq (`hashes`: seq → hash, at least at every checkpoint's seq)."""
    for checkpoint in checkpoints:
        report.checkpoints += 1
        bad = verifier.problem(checkpoint) if verifier is not None else None
        if bad:
            report.problems.append(Problem(checkpoint.seq, f"checkpoint {bad}"))
            continue
        report.last_checkpoint = max(report.last_checkpoint, checkpoint.seq)
        if checkpoint.seq not in hashes:
            report.problems.append(Problem(checkpoint.seq, "is missing: a signed checkpoint points at it "
                                                           "(records removed from the end)"))
        elif hashes[checkpoint.seq] != checkpoint.hash:
            report.problems.append(Problem(checkpoint.seq, "does not have the hash its signed checkpoint holds: "
                                                           f"the chain up to {checkpoint.seq} was rewritten"))
