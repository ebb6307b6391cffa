"""`AuditLog`: what the pipeline holds to append events, and what the CLI asks.

    log = AuditLog.open(settings)                  # store, signing key, interval from [audit]
    log.record(EventType.ACCEPTED, envelope)        # one event, one transaction
    log.append([AuditEvent.of(EventType.ROUTED, e) for e in projections])   # one transaction
    log.checkpoint()                                # sign the head now (e.g. at shutdown)
    log.life(message_id)                            # a message's whole life, in order
    log.close()

Every event is screened (bus.audit.guard) before it is written. Appends are synchronous
and short; async code that must not wait uses bus.audit.recorder.AuditRecorder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from bus.audit.backends import open_store
from bus.audit.chain import AuditRecord
from bus.audit.events import AuditEvent, EventType
from bus.audit.guard import screen
from bus.audit.signing import Checkpoint, CheckpointSigner, CheckpointVerifier
from bus.audit.store import AuditStore
from bus.audit.verify import Report, verify

if TYPE_CHECKING:
    from bus.envelope import Envelope
    from bus.settings import Settings

__all__ = ["AuditLog"]


class AuditLog:
    """The trail: a store, and optionally a signer that checkpoints every `checkpoint_every` records."""

    def __init__(self, store: AuditStore, signer: CheckpointSigner | None = None,
                 checkpoint_every: int = 1000, trusted_keys: Sequence[bytes] = ()) -> None:
        self.store = store
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self._trusted = tuple(trusted_keys)

    @classmethod
    def open(cls, settings: Settings) -> AuditLog:
        """The trail configured in `settings.audit`."""
        audit = settings.audit
        signer = CheckpointSigner.from_pem(audit.signing_key) if audit.signing_key else None
        return cls(open_store(settings.audit_store), signer, audit.checkpoint_every, audit.trusted_keys)

    def append(self, events: Iterable[AuditEvent]) -> list[AuditRecord]:
        """Screen and append `events` in one transaction; returns the records as chained."""
        screened = [screen(e) for e in events]
        return self.store.append(screened, self.signer, self.checkpoint_every)

    def record(self, event: EventType | str, envelope: Envelope, **fields: Any) -> AuditRecord:
        """Append one event of `envelope` (see AuditEvent.of for `fields`)."""
        return self.append([AuditEvent.of(event, envelope, **fields)])[0]

    def checkpoint(self) -> Checkpoint | None:
        """Sign the head now; None without a signing key, on an empty trail or a signed head."""
        return self.store.add_checkpoint(self.signer) if self.signer is not None else None

    def verifier(self, extra_public_keys: Sequence[bytes] = ()) -> CheckpointVerifier | None:
        """Trusts the signing key's public half, `[audit] trusted_keys` and `extra_public_keys`;
        None when there is no key at all (signatures then are not checked)."""
        from cryptography.hazmat.primitives import serialization

        pems = [*self._trusted, *extra_public_keys]
        if self.signer is not None:
            pems.append(self.signer.public_key.public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
        return CheckpointVerifier.from_pems(pems) if pems else None

    def verify(self, extra_public_keys: Sequence[bytes] = ()) -> Report:
        return verify(self.store, self.verifier(extra_public_keys))

    def life(self, message_id: str) -> list[AuditRecord]:
        """Every record of one message, in the order it happened."""
        return self.store.by_message(message_id)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
