"""Records and the hash chain: canonical bytes, SHA-256, each record naming its predecessor.

A record is an AuditEvent plus `seq` (1, 2, 3 … with no gaps), `prev_hash` (the hash of
record seq − 1; GENESIS for the first) and `hash`:

    digest = SHA-256( content(record) )               content: every field and seq, not prev_hash
    hash   = SHA-256( "renkei-audit|2|" prev_hash "|" digest )
    content = JSON, keys sorted, no spaces, UTF-8, every field present (null when empty), "v": 2

The hash is taken in two steps so that a municipality's export (bus.audit.export) can give
another municipality's record as its digest alone and the auditor still recomputes the chain
through it: a forged record changes every later hash up to the signed checkpoint, which no
one without the signing key can follow. Records written in format 1 (hash = SHA-256 of the
canonical form with prev_hash and "v": 1 inside) still verify (`legacy_hash`).

Changing any field, the order, or removing a record changes a hash that a later record
(or a signed checkpoint) holds, so bus.audit.verify finds it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

import orjson

from bus.audit.events import AuditEvent, EventType

__all__ = ["EVENT_FIELDS", "FORMAT_VERSION", "GENESIS", "AuditRecord", "Head", "canonical", "chain_hash",
           "content_digest", "legacy_hash", "link", "link_rows", "record_hash",
           "record_row"]

FORMAT_VERSION = 2
GENESIS = "0" * 64
#: the fields of AuditEvent, in their declared order (also the stores' column order)
EVENT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AuditEvent))
_VALUES = attrgetter(*EVENT_FIELDS)  # an event's fields as one tuple, in EVENT_FIELDS order
_EVENT, _CODES = EVENT_FIELDS.index("event"), EVENT_FIELDS.index("codes")
_SORT = orjson.OPT_SORT_KEYS
_PREFIX = f"renkei-audit|{FORMAT_VERSION}|"


@dataclass(frozen=True, slots=True)
class Head:
    """The end of the chain: the last record's seq and hash (0 and GENESIS when empty)."""

    seq: int = 0
    hash: str = GENESIS


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One appended event, where it sits in the chain."""

    seq: int
    prev_hash: str
    hash: str
    event: AuditEvent

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data: every field, seq, prev_hash and hash."""
        return {**_fields(self.seq, self.prev_hash, self.event), "hash": self.hash}

    @property
    def computed_hash(self) -> str:
        """The hash its content should have; differs from `hash` when it was altered (a record of
        format 1 is checked by that format's hash)."""
        digest = record_hash(self.seq, self.prev_hash, self.event)
        if digest != self.hash and legacy_hash(self.seq, self.prev_hash, self.event) == self.hash:
            return self.hash
        return digest

    @property
    def digest(self) -> str:
        """The digest of its content (what an export gives of a withheld record)."""
        return content_digest(self.seq, self.event)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AuditRecord:
        """Rebuild from a store row (codes as a comma list or a list)."""
        values: dict[str, Any] = {name: row.get(name) for name in EVENT_FIELDS}
        codes = values.get("codes") or ()
        values["codes"] = tuple(codes.split(",")) if isinstance(codes, str) else tuple(codes)
        values["event"] = _event_type(values["event"])
        return cls(seq=int(row["seq"]), prev_hash=str(row["prev_hash"]), hash=str(row["hash"]),
                   event=AuditEvent(**values))


def _event_type(value: Any) -> EventType:
    try:
        return EventType(value)
    except ValueError:
        # keep an unknown (altered) value as it is stored, so verify reports a bad hash
        return value  # type: ignore[no-any-return]


def _fields(seq: int, prev_hash: str, event: AuditEvent) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(event, name) for name in EVENT_FIELDS}
    data["event"] = str(event.event)
    data["codes"] = list(event.codes)
    data.update(seq=seq, prev_hash=prev_hash)
    return data


def canonical(seq: int, event: AuditEvent) -> bytes:
    """The bytes a record's content digest is taken over (everything but prev_hash)."""
    return _canonical(seq, _VALUES(event))


def _canonical(seq: int, values: tuple[Any, ...]) -> bytes:
    data = dict(zip(EVENT_FIELDS, values, strict=True))
    data["event"] = str(values[_EVENT])
    data["codes"] = list(values[_CODES])
    data["seq"] = seq
    data["v"] = FORMAT_VERSION
    # orjson: the same bytes as json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # (tests/unit/test_audit_model.py proves it over arbitrary text), in a tenth of the time
    return orjson.dumps(data, option=_SORT)


def content_digest(seq: int, event: AuditEvent) -> str:
    return hashlib.sha256(canonical(seq, event)).hexdigest()


def chain_hash(prev_hash: str, digest: str) -> str:
    """A record's hash from its predecessor's hash and its content digest."""
    return hashlib.sha256(f"{_PREFIX}{prev_hash}|{digest}".encode()).hexdigest()


def record_hash(seq: int, prev_hash: str, event: AuditEvent) -> str:
    return chain_hash(prev_hash, content_digest(seq, event))


def legacy_hash(seq: int, prev_hash: str, event: AuditEvent) -> str:
    """A format-1 record's hash: SHA-256 of its canonical form with prev_hash inside."""
    data = {**_fields(seq, prev_hash, event), "v": 1}
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def link(head: Head, events: Iterable[AuditEvent]) -> list[AuditRecord]:
    """Chain `events` after `head`: the records to append, in order."""
    return link_rows(head, events)[0]


def link_rows(head: Head, events: Iterable[AuditEvent]) -> tuple[list[AuditRecord], list[tuple[Any, ...]]]:
    """`link`, and each record as the stores' row (seq, prev_hash, hash, then EVENT_FIELDS with the
    event as text and the codes as a comma list), in one pass: the store's append path, where
    reading every field once per record instead of once for the hash and again for the row pays
    (about 12 records per change)."""
    records: list[AuditRecord] = []
    rows: list[tuple[Any, ...]] = []
    seq, prev = head.seq, head.hash
    sha256 = hashlib.sha256
    for event in events:
        seq += 1
        values = _VALUES(event)
        digest = sha256(_canonical(seq, values)).hexdigest()
        digest = sha256(f"{_PREFIX}{prev}|{digest}".encode()).hexdigest()
        records.append(AuditRecord(seq, prev, digest, event))
        rows.append(_row(seq, prev, digest, values))
        prev = digest
    return records, rows


def record_row(record: AuditRecord) -> tuple[Any, ...]:
    """`record` as the stores' row (see `link_rows`)."""
    return _row(record.seq, record.prev_hash, record.hash, _VALUES(record.event))


def _row(seq: int, prev_hash: str, digest: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
    row = [seq, prev_hash, digest, *values]
    row[3 + _EVENT] = str(values[_EVENT])
    row[3 + _CODES] = ",".join(values[_CODES])
    return tuple(row)
