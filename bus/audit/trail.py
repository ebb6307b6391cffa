"""Who received a resident's data, when, under which route and legal basis (情報提供等記録).

The operator gives the 宛名番号; it is pseudonymised here with the pseudonym key of each
municipality asked about — the current key and every earlier one still listed in
`[audit] previous_pseudonym_key_files`, since a record keeps the pseudonym of the key in force
when it was written — and the trail is searched for those pseudonyms. The 宛名番号 itself is
never stored, printed or logged.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from typing import TextIO

from bus.audit.chain import AuditRecord
from bus.audit.events import EventType
from bus.audit.store import AuditStore
from bus.masking import Pseudonymizer

__all__ = ["TrailEntry", "resident_subjects", "resident_trail", "write_csv"]


@dataclass(frozen=True, slots=True)
class TrailEntry:
    """One delivery of a resident's data to a receiving system."""

    at: str
    municipality: str
    destination: str
    kind: str
    route: str
    legal_basis: str
    message_id: str
    receipt: str
    subject: str
    seq: int

    @classmethod
    def of(cls, record: AuditRecord) -> TrailEntry:
        e = record.event
        return cls(e.at, e.municipality or "", e.destination or "", e.projection or e.kind or "", e.route or "",
                   e.legal_basis or "", e.message_id or "", e.receipt or "", e.subject or "", record.seq)


CSV_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(TrailEntry))


def resident_subjects(address_number: str, municipalities: Sequence[str], keys: Sequence[bytes]) -> list[str]:
    """The pseudonyms a resident may appear under: one per municipality and key."""
    found: list[str] = []
    for key in keys:
        pseudonymizer = Pseudonymizer(key)
        for municipality in municipalities:
            subject = pseudonymizer.subject(municipality, address_number)
            if subject not in found:
                found.append(subject)
    return found


def resident_trail(store: AuditStore, address_number: str, *, keys: Sequence[bytes],
                   municipalities: Sequence[str] = (), since: str | None = None) -> list[TrailEntry]:
    """Every delivery of this resident's data, oldest first. Without `municipalities`, every
    municipality that occurs in the trail is asked about."""
    asked = list(municipalities) or store.municipalities()
    subjects = resident_subjects(address_number, asked, keys)
    only = asked[0] if len(asked) == 1 else None
    records = store.by_subjects(subjects, events=(EventType.DELIVERED,), municipality=only, since=since)
    return [TrailEntry.of(r) for r in records if r.event.municipality in asked]


def write_csv(entries: Sequence[TrailEntry], out: TextIO) -> None:
    """CSV with a header row (UTF-8 text; `out` decides the encoding)."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        writer.writerow(astuple(entry))
