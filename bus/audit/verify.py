"""Verify a trail: walk the chain once, check every checkpoint, name the first broken record.

What is found, and how it is named (`Problem.seq` is the record to look at):

- altered: a record's content no longer gives its hash;
- missing: the sequence jumps (a record was removed), or ends before the head or a checkpoint;
- out of place: a record's prev_hash is not the hash of the record before it (records
  removed and renumbered, inserted, or reordered);
- a checkpoint whose signature does not verify (forged, altered, or by an unknown key), or
  whose hash is not the chain's hash at its seq (the chain was rewritten before it).

With a witness (bus.audit.witness: every signed checkpoint also kept outside the store):

- a witnessed checkpoint past the store's end: records cut off the end, or the whole store
  rolled back to an earlier copy;
- a witnessed checkpoint whose hash is not the chain's at its seq: the store replaced or
  rewritten; one the store no longer holds: checkpoints removed.

With `interval` (the bus signs the head at least that often while it writes records):

- a record after the last checkpoint written longer than the interval after it: the signer
  would have signed it, so checkpoints were removed or the records added by someone
  without the key. (A crash leaves an unsigned tail, but never one that long.)

Records after the last checkpoint are protected by the chain alone: someone who can write
the database could rewrite them consistently. `Report.unsigned` says how many there are.
`Report.unproven` says what this verification could not prove (no key, no witness, no
checkpoints), so an auditor can tell "OK" from "OK as far as it goes".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bus.audit.chain import GENESIS, AuditRecord
from bus.audit.signing import Checkpoint, CheckpointVerifier
from bus.audit.store import AuditStore

if TYPE_CHECKING:
    from bus.audit.witness import Witness

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
    head_hash: str = GENESIS  # the head as the walk ended (the last record's hash, when ok)
    checkpoints: int = 0
    last_checkpoint: int = 0
    witnessed: int = 0
    anchor: Checkpoint | None = None  # the last checkpoint found good (its signature, its hash in the chain)
    problems: list[Problem] = field(default_factory=list)
    unproven: list[str] = field(default_factory=list)  # what this verification could not prove
    notes: list[str] = field(default_factory=list)

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


def verify(store: AuditStore, verifier: CheckpointVerifier | None = None, *, witness: Witness | None = None,
           interval: float = 0.0, since: Checkpoint | None = None) -> Report:
    """Check the whole trail; without a verifier, checkpoint signatures are not checked
    (their hashes still are); with a `witness`, compare its checkpoints with the store; with an
    `interval` (seconds), no record may stay unsigned longer than that. `since`: a checkpoint an
    earlier verification found good (its `Report.anchor`; unsigned, `signature` "", on a trail
    without checkpoints): only its record and what comes after it are checked."""
    report = Report()
    after = since.seq if since is not None else 0
    witnessed = [c for c in (witness.checkpoints() if witness is not None else []) if c.seq > after]
    present = store.head().seq  # records after it, written while this runs, may be signed by checkpoints unread
    checkpoints = store.checkpoints(after)  # after the witness: the store only grows meanwhile
    wanted = {c.seq for c in checkpoints} | {c.seq for c in witnessed}
    good = [c for c in [*checkpoints, *witnessed] if verifier is None or verifier.problem(c) is None]
    base = max([*good, *([since] if since else [])], key=lambda c: c.seq, default=None)  # the last good one anywhere
    deadline = _deadline(base, interval)
    hashes: dict[int, str] = {}
    # from `since` on, its own record too: read again, it must still have the hash that was signed
    expected, prev = (after, None) if since is not None else (1, GENESIS)
    report.anchor = since
    report.last_checkpoint = after
    start = max(after - 1, 0)
    while True:
        for record in store.records(after=start):
            report.records += 1
            if since is not None and record.seq == after and record.hash != since.hash:
                report.problems.append(Problem(after, "does not have the hash it had when it was last verified: "
                                                      f"the chain up to {after} was rewritten"))
            problem = _link_problem(record, expected, prev)
            if problem is not None:
                report.problems.append(problem)
            if record.seq in wanted:
                hashes[record.seq] = record.hash
            if deadline is not None and base is not None and record.seq > base.seq \
                    and record.seq <= present and _later(record.event.at, deadline):
                report.problems.append(Problem(record.seq, f"was written at {record.event.at}, more than "
                                                           f"{interval:g} s after the last checkpoint (record "
                                                           f"{base.seq}, signed {base.signed_at}), though the head "
                                                           f"is signed every {interval:g} s while records are "
                                                           "written: checkpoints removed, or records added without "
                                                           "the signing key"))
                deadline = None  # the first one says it
            expected, prev = record.seq + 1, record.hash
        last = expected - 1
        head = store.head()
        if head.seq <= last or not store.page(last, 1):
            break
        start = last  # records appended while the walk went on (a running bus): walk them too
    report.head_seq, report.head_hash = head.seq, head.hash
    if head.seq > last:
        report.problems.append(Problem(last + 1, f"is missing: the trail ends at {last} but its head is at {head.seq} "
                                                 "(records removed from the end)"))
    elif head.seq != last or (last and head.hash != prev):
        report.problems.append(Problem(last, f"does not match the head (seq {head.seq}): the head was altered"))
    check_checkpoints(report, checkpoints, hashes, verifier)
    if witness is not None:
        _check_witness(report, witnessed, {c.seq for c in checkpoints}, hashes, last, verifier)
    _unproven(report, verifier, witness, earlier=since is not None and bool(since.signature))
    return report


def _link_problem(record: AuditRecord, expected: int, prev: str | None) -> Problem | None:
    """What is wrong with `record` where record `expected` following hash `prev` should be."""
    if record.seq != expected:
        gap = f"{expected}" if record.seq == expected + 1 else f"{expected}–{record.seq - 1}"
        return Problem(expected, f"is missing (record{'s' if '–' in gap else ''} {gap} removed: the sequence goes "
                                 f"from {expected - 1} to {record.seq})")
    if prev is not None and record.prev_hash != prev:
        return Problem(record.seq, f"does not follow record {record.seq - 1}: its prev_hash is not that record's hash "
                                   "(records removed, inserted or reordered)")
    if record.computed_hash != record.hash:
        return Problem(record.seq, f"was altered: its content no longer matches its hash "
                                   f"({record.event.event} of message {record.event.message_id})")
    return None


def _deadline(base: Checkpoint | None, interval: float) -> datetime | None:
    if base is None or interval <= 0:
        return None
    try:
        signed = datetime.fromisoformat(base.signed_at)
    except ValueError:
        return None
    return signed + timedelta(seconds=interval + max(2.0, interval / 2))  # clocks of several hosts differ a little


def _later(at: str, deadline: datetime) -> bool:
    try:
        return datetime.fromisoformat(at) > deadline
    except (TypeError, ValueError):
        return False  # an unreadable time is an altered record, named by its hash


def _check_witness(report: Report, witnessed: Sequence[Checkpoint], in_store: set[int], hashes: Mapping[int, str],
                   last: int, verifier: CheckpointVerifier | None) -> None:
    """Every witnessed checkpoint must be in the store: its record, its hash, the checkpoint itself."""
    for checkpoint in witnessed:
        report.witnessed += 1
        bad = verifier.problem(checkpoint) if verifier is not None else None
        if bad:
            report.problems.append(Problem(checkpoint.seq, f"witnessed checkpoint {bad}"))
        elif checkpoint.seq > last:
            report.problems.append(Problem(last + 1, f"is missing: the witness holds a checkpoint signed at "
                                                     f"{checkpoint.signed_at} for record {checkpoint.seq}, but the "
                                                     f"store ends at record {last} (records cut off the end, or the "
                                                     "store rolled back to an earlier copy)"))
            return
        elif hashes.get(checkpoint.seq) != checkpoint.hash:
            report.problems.append(Problem(checkpoint.seq, "does not have the hash the witness holds for it: the "
                                                           f"chain up to {checkpoint.seq} was rewritten, or the "
                                                           "store replaced by another"))
        elif checkpoint.seq not in in_store:
            report.problems.append(Problem(checkpoint.seq, f"has lost its checkpoint (signed {checkpoint.signed_at}):"
                                                           " the witness holds it, the store does not "
                                                           "(checkpoints removed)"))
    newest = max((c.seq for c in witnessed), default=0)
    behind = sorted(seq for seq in in_store if seq > newest)
    if behind:
        report.notes.append(f"the witness is behind: {len(behind)} checkpoint(s) after record {newest} are only in "
                            "the store (a witness write failed, or the bus stopped between the two writes)")


def _unproven(report: Report, verifier: CheckpointVerifier | None, witness: Witness | None, *,
              earlier: bool = False) -> None:
    """`earlier`: a good checkpoint was found before (an incremental verification)."""
    if report.records and not report.checkpoints and not earlier:
        report.unproven.append("that the chain is the one the bus wrote: there are no signed checkpoints "
                               "(configure [audit] signing_key_file)")
    elif verifier is None and (report.checkpoints or earlier):
        report.unproven.append("that the checkpoints were signed by the bus: no public key to check them with "
                               "(give --public-key, or configure [audit] signing_key_file or trusted_keys)")
    if witness is None and (report.records or earlier):
        report.unproven.append("that the store was not cut short or rolled back to an earlier copy: no witness "
                               "(configure [audit] witness, or give --witness)")
    if report.unsigned:
        report.notes.append(f"{report.unsigned} records after the last checkpoint are protected by the chain only")


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
        if hashes.get(checkpoint.seq) == checkpoint.hash and (report.anchor is None
                                                              or checkpoint.seq > report.anchor.seq):
            report.anchor = checkpoint
        if checkpoint.seq not in hashes:
            report.problems.append(Problem(checkpoint.seq, "is missing: a signed checkpoint points at it "
                                                           "(records removed from the end)"))
        elif hashes[checkpoint.seq] != checkpoint.hash:
            report.problems.append(Problem(checkpoint.seq, "does not have the hash its signed checkpoint holds: "
                                                           f"the chain up to {checkpoint.seq} was rewritten"))
