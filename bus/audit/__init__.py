"""The audit trail (DESIGN §6): every life event of every message, append-only, hash-chained,
its head signed at checkpoints, with no personal data in it.

    events      EventType, AuditEvent          what happened (the pipeline makes these)
    guard       screen, PersonalDataInAudit    no plaintext personal data, checked at append
    chain       AuditRecord, Head, canonical   content digest + SHA-256 over (prev_hash, digest)
    signing     CheckpointSigner/Verifier      Ed25519 signatures over (seq, hash)
    store       AuditStore, open_store         the contract; sqlite_store, postgres_store
    log         AuditLog                       append / record / checkpoint / life / verify
    recorder    AuditRecorder                  buffered, non-blocking appends for async code
    witness     Witness, open_witness          every signed checkpoint also kept outside the store
    verify      verify, Report, Problem        the first broken record, and what was not proven
    trail       resident_trail, write_csv      who received a resident's data (情報提供等記録)
    export      export_municipality, verify_export   one municipality's records, for its auditor

See docs/audit.md.
"""

from __future__ import annotations

from bus.audit.backends import open_store
from bus.audit.chain import AuditRecord, Head
from bus.audit.events import AuditEvent, EventType
from bus.audit.guard import screen
from bus.audit.log import AuditLog
from bus.audit.recorder import AuditRecorder
from bus.audit.signing import Checkpoint, CheckpointSigner, CheckpointVerifier, generate_key_file
from bus.audit.store import AuditStore
from bus.audit.trail import TrailEntry, resident_trail, write_csv
from bus.audit.verify import Problem, Report, verify
from bus.errors import AuditStoreError, PersonalDataInAudit

__all__ = [
    "AuditEvent",
    "AuditLog",
    "AuditRecord",
    "AuditRecorder",
    "AuditStore",
    "AuditStoreError",
    "Checkpoint",
    "CheckpointSigner",
    "CheckpointVerifier",
    "EventType",
    "Head",
    "PersonalDataInAudit",
    "Problem",
    "Report",
    "TrailEntry",
    "generate_key_file",
    "open_store",
    "resident_trail",
    "screen",
    "verify",
    "write_csv",
]
