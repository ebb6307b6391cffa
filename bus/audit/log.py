"""`AuditLog`: what the pipeline holds to append events, and what the CLI asks.

    log = AuditLog.open(settings)                  # store, signing key, interval from [audit]
    log.record(EventType.ACCEPTED, envelope)        # one event, one transaction
    log.append([AuditEvent.of(EventType.ROUTED, e) for e in projections])   # one transaction
    log.checkpoint()                                # sign the head now (e.g. at shutdown)
    log.life(message_id)                            # a message's whole life, in order
    log.close()

Every event is screened (bus.audit.guard) before it is written. Appends are synchronous
and short; async code that must not wait uses bus.audit.recorder.AuditRecorder.

The head is signed every `checkpoint_every` records, and also by the first append more than
`checkpoint_interval` seconds after this log last signed (in the same transaction), so while
records are written none stays unsigned longer than the interval; the recorder signs an idle
tail after the interval too. Every checkpoint made here is then written to the `witness`
(bus.audit.witness), if there is one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from bus.audit.backends import open_store
from bus.audit.chain import AuditRecord
from bus.audit.events import AuditEvent, EventType
from bus.audit.fanout import split_records
from bus.audit.guard import screen
from bus.audit.signing import Checkpoint, CheckpointSigner, CheckpointVerifier
from bus.audit.store import AuditStore
from bus.audit.verify import Report, verify
from bus.audit.witness import Witness, open_witness
from bus.logs import get_logger

if TYPE_CHECKING:
    from bus.envelope import Envelope
    from bus.settings import Settings

__all__ = ["AuditLog"]

_log = get_logger("renkei.audit")


class AuditLog:
    """The trail: a store, and optionally a signer that checkpoints every `checkpoint_every` records."""

    def __init__(self, store: AuditStore, signer: CheckpointSigner | None = None,
                 checkpoint_every: int = 1000, trusted_keys: Sequence[bytes] = (), *,
                 checkpoint_interval: float = 0.0, witness: Witness | None = None) -> None:
        self.store = store
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.witness = witness
        self._trusted = tuple(trusted_keys)
        self._signed_at = float("-inf")  # time.monotonic() of this log's last checkpoint

    @classmethod
    def open(cls, settings: Settings, store: str | None = None) -> AuditLog:
        """The trail configured in `settings.audit` (`store` overrides its location)."""
        audit = settings.audit
        signer = CheckpointSigner.from_pem(audit.signing_key) if audit.signing_key else None
        witness = open_witness(audit.witness) if audit.witness else None
        return cls(open_store(store or settings.audit_store), signer, audit.checkpoint_every, audit.trusted_keys,
                   checkpoint_interval=audit.checkpoint_interval, witness=witness)

    def append(self, events: Iterable[AuditEvent]) -> list[AuditRecord]:
        """Screen and append `events` in one transaction; returns the records as chained."""
        return self.append_screened([screen(e) for e in events])

    def append_screened(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Append events already screened (the recorder screens at emit)."""
        return self.store.append(events, self.signer, self.checkpoint_every, sign_now=self.signing_due,
                                 on_signed=self._signed)

    def try_append_screened(self, events: Sequence[AuditEvent]) -> list[AuditRecord] | None:
        """`append_screened` if the store can take them at once (AuditStore.try_append), else
        None with nothing written. Always None with a witness: a signed head is handed to it
        after the commit, and it may be a server to wait for (bus.audit.witness)."""
        if self.witness is not None:
            return None
        return self.store.try_append(events, self.signer, self.checkpoint_every, sign_now=self.signing_due,
                                     on_signed=self._signed)

    @property
    def signing_due(self) -> bool:
        """The interval has passed since this log last signed (always False without an interval)."""
        return self.checkpoint_interval > 0 and time.monotonic() - self._signed_at >= self.checkpoint_interval

    def _signed(self, checkpoint: Checkpoint) -> None:
        """After the store committed `checkpoint`: note the time, hand it to the witness."""
        self._signed_at = time.monotonic()
        if self.witness is None:
            return
        try:
            self.witness.record(checkpoint)
        except Exception as exc:  # the checkpoint is in the store; verify notes the witness is behind
            _log.error("audit witness write failed", witness=self.witness.location, seq=checkpoint.seq,
                       error=f"{type(exc).__name__}: {exc}")

    def record(self, event: EventType | str, envelope: Envelope, **fields: Any) -> AuditRecord:
        """Append one event of `envelope` (see AuditEvent.of for `fields`)."""
        return self.append([AuditEvent.of(event, envelope, **fields)])[0]

    def checkpoint(self) -> Checkpoint | None:
        """Sign the head now; None without a signing key, on an empty trail or a signed head."""
        if self.signer is None:
            return None
        made = self.store.add_checkpoint(self.signer)
        if made is not None:
            self._signed(made)
        return made

    def verifier(self, extra_public_keys: Sequence[bytes] = ()) -> CheckpointVerifier | None:
        """Trusts the signing key's public half, `[audit] trusted_keys` and `extra_public_keys`;
        None when there is no key at all (signatures then are not checked)."""
        from cryptography.hazmat.primitives import serialization

        pems = [*self._trusted, *extra_public_keys]
        if self.signer is not None:
            pems.append(self.signer.public_key.public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
        return CheckpointVerifier.from_pems(pems) if pems else None

    def verify(self, extra_public_keys: Sequence[bytes] = (), witness: Witness | None = None) -> Report:
        """Verify the trail against its keys, its witness (or `witness`) and its checkpoint interval."""
        return verify(self.store, self.verifier(extra_public_keys), witness=witness or self.witness,
                      interval=self.checkpoint_interval)

    def life(self, message_id: str) -> list[AuditRecord]:
        """Every record of one message, in the order it happened (AuditStore.by_message); a
        `routed` record naming several destinations as one per destination (bus.audit.fanout)."""
        return split_records(self.store.by_message(message_id))

    def close(self) -> None:
        self.store.close()
        if self.witness is not None:
            self.witness.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
