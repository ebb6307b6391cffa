"""Re-anchor a trail of format 1 in a signed chain of format 2, so that it can be exported with
other municipalities' records withheld (bus.audit.export).

A format-1 record's hash is taken over its content *with* its prev_hash inside, so an export
cannot give it by a digest alone and still let an auditor recompute the chain through it: the
record before a withheld run would be tied to nothing. Records cannot be rewritten in place
(the store is append-only, and their hashes are what the old checkpoints signed), so:

    migrate_trail(old, new, signer, verifier=…, witness=…)

1. verifies the old trail (every hash, link and checkpoint; its witness, if any): a broken
   trail is refused, since re-chaining it would launder the break;
2. appends every record's event, unchanged (the same seq, time and fields), to the new, empty
   store, chained in format 2 and signed every `checkpoint_every` records as the bus does;
3. appends one `migrated` record naming the old trail's head (seq and format-1 hash) and its
   last checkpoint (seq, time, key), signs the new head at once and hands the checkpoints to
   the new `witness`;
4. verifies the new trail, and that it holds exactly the old records' contents.

The old store (and its witness) is kept as it is: with it an auditor can confirm that record S
of both trails has the same content, and that the `migrated` record names the old head. The
new trail verifies and exports like any trail of format 2. The bus must be stopped meanwhile: a
trail that grows during the copy is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bus.audit.chain import legacy_hash
from bus.audit.events import AuditEvent, EventType
from bus.audit.signing import Checkpoint, CheckpointSigner, CheckpointVerifier
from bus.audit.store import AuditStore
from bus.audit.verify import verify
from bus.audit.witness import Witness
from bus.errors import AuditStoreError

__all__ = ["Migration", "migrate_trail"]

_BATCH = 5000


@dataclass(frozen=True, slots=True)
class Migration:
    records: int  # re-chained (the `migrated` record not counted)
    format_1: int  # of which were written in format 1
    anchor_seq: int  # the `migrated` record
    checkpoint: Checkpoint  # the signature over it
    unproven: tuple[str, ...]  # what the old trail's verification could not prove


def migrate_trail(old: AuditStore, new: AuditStore, signer: CheckpointSigner, *,
                  verifier: CheckpointVerifier | None = None, old_witness: Witness | None = None,
                  witness: Witness | None = None, checkpoint_every: int = 1000,
                  progress: Callable[[int], None] | None = None) -> Migration:
    """Copy `old` into the empty `new` in format 2 (see the module); raises AuditStoreError
    saying why when the old trail is broken or grows, or `new` is not empty."""
    if new.head().seq:
        raise AuditStoreError(f"the new store {new.location} is not empty (record {new.head().seq}): migrate into an "
                              "empty one")
    head = old.head()
    checked = verify(old, verifier, witness=old_witness)
    if checked.first is not None:
        raise AuditStoreError(f"the trail in {old.location} is broken at record {checked.first.seq} "
                              f"({checked.first.what}); it is not migrated")
    on_signed = witness.record if witness is not None else None
    batch: list[AuditEvent] = []
    copied = legacy = 0
    for record in old.records():
        if record.seq > head.seq:
            break
        legacy += legacy_hash(record.seq, record.prev_hash, record.event) == record.hash
        batch.append(record.event)
        if len(batch) >= _BATCH or (checkpoint_every > 0 and record.seq % checkpoint_every == 0):  # signed there
            copied += _append(new, batch, signer, checkpoint_every, on_signed, progress)
    copied += _append(new, batch, signer, checkpoint_every, on_signed, progress)
    if old.head() != head:
        raise AuditStoreError(f"the trail in {old.location} grew while it was migrated: stop the bus and migrate "
                              f"into a new, empty store again (the one written, {new.location}, is incomplete)")
    last = max(old.checkpoints(), key=lambda c: c.seq, default=None)
    signed = f"its last checkpoint record {last.seq}, signed {last.signed_at} by key {last.key_id}" if last else \
        "no checkpoint"
    anchor = AuditEvent(EventType.MIGRATED, source="renkei-audit-migrate", actor="renkei audit migrate",
                        reason=f"records 1-{head.seq} re-chained in format 2 from {old.location}: its head record "
                               f"{head.seq} hash {head.hash}, {signed}")
    [made] = new.append([anchor], signer, sign_now=True, on_signed=on_signed)
    checkpoint = new.checkpoints(made.seq - 1)[0]
    _check_copy(old, new, verifier, witness, head.seq)
    return Migration(copied, legacy, made.seq, checkpoint, tuple(checked.unproven))


def _append(new: AuditStore, batch: list[AuditEvent], signer: CheckpointSigner, every: int,
            on_signed: Callable[[Checkpoint], None] | None, progress: Callable[[int], None] | None) -> int:
    n = len(batch)
    if n:
        new.append(batch, signer, every, on_signed=on_signed)
        batch.clear()
        if progress is not None:
            progress(n)  # records copied since the last call
    return n


def _check_copy(old: AuditStore, new: AuditStore, verifier: CheckpointVerifier | None, witness: Witness | None,
                last: int) -> None:
    report = verify(new, verifier, witness=witness)
    if report.first is not None:
        raise AuditStoreError(f"the migrated trail in {new.location} does not verify: {report.first}")
    for a, b in zip(old.records(), new.records(), strict=False):
        if a.seq > last:
            break
        if (a.seq, a.digest) != (b.seq, b.digest):
            raise AuditStoreError(f"record {a.seq} of the migrated trail differs from the old one")
