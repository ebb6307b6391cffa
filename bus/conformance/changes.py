"""The changes a conformance run sends: schema-valid messages of a system's kind, addressed
as the bus addresses them (an `Outbound` with a fresh message id per run).

The records come from the synthetic registry (bus.synthetic.samples), one group of 異動事由
at a time (increase, decrease, correction), distinct reasons first, so every group the
kind can receive is exercised. Every message id is new (a uuid), so a run against a
receiver that keeps what it applied never collides with an earlier run.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

from bus.catalog import Catalog
from bus.catalog.spec import Field
from bus.envelope import Envelope
from bus.ports import Outbound
from bus.synthetic.registry import REASON_GROUPS
from bus.synthetic.samples import PROJECTION_KINDS, sample_records

__all__ = ["ChangeMaker", "reason_of"]


def reason_of(record: dict[str, Any]) -> str:
    """The 異動事由 of a record ("-" for kinds without one, e.g. portal notices)."""
    change = record.get("change")
    reason = change.get("reason") if isinstance(change, dict) else record.get("related_reason")
    return str(reason or "-")


class ChangeMaker:
    """Messages of `kind` for `destination`, as the bus would deliver them there."""

    def __init__(self, catalog: Catalog, kind: str, destination: str, *, seed: int = 0,
                 municipality: str = "131016") -> None:
        self.catalog = catalog
        self.kind = kind
        self.destination = destination
        self.seed = seed
        self.municipality = municipality
        self.schema = catalog.get(kind)

    def records(self, per_group: int = 2) -> Iterator[dict[str, Any]]:
        """Records of each 異動事由 group the kind takes, distinct reasons first."""
        if self.kind not in PROJECTION_KINDS:
            yield from sample_records(self.kind, self.catalog, seed=self.seed, n=per_group * len(REASON_GROUPS))
            return
        for group in REASON_GROUPS:
            try:
                pool = list(sample_records(self.kind, self.catalog, seed=self.seed, n=per_group * 6, reasons=[group]))
            except (RuntimeError, ValueError):
                continue  # the registry cannot make this group happen for this kind's people
            distinct: dict[str, dict[str, Any]] = {}
            for record in pool:
                distinct.setdefault(reason_of(record), record)
            chosen = list(distinct.values())[:per_group]
            chosen += [r for r in pool if all(r is not c for c in chosen)][: per_group - len(chosen)]
            yield from chosen

    def edge_records(self, record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Boundary cases of `record`, each still valid for the kind: every text field it holds
        at its maxLength (katakana in kana fields, a JIS level-1 kanji elsewhere: no 外字), and
        every optional field it can do without left out."""
        cases: list[tuple[str, dict[str, Any]]] = []
        longest = copy.deepcopy(record)
        filled = _fill_longest(longest, self.schema.fields)
        if filled and self._valid(longest):
            cases.append((f"{filled} text fields at their maxLength", longest))
        minimal = copy.deepcopy(record)
        dropped = 0
        for path in _optional_paths(self.schema.fields):
            parent, name = _parent(minimal, path)
            if parent is None or parent.get(name) is None:
                continue
            kept = parent[name]
            parent[name] = None
            if self._valid(minimal):
                dropped += 1
            else:
                parent[name] = kept  # a rule needs it here (e.g. 転出 needs 転出先住所)
        if dropped:
            cases.append((f"{dropped} optional fields left out", minimal))
        return cases

    def _valid(self, record: dict[str, Any]) -> bool:
        from bus.errors import ValidationFailed
        from bus.validation.validator import validate

        try:
            validate(self.schema.to_xml(record), content_type="application/xml", kind=self.kind, catalog=self.catalog)
        except (ValidationFailed, ValueError, TypeError, KeyError):
            return False
        return True

    def message(self, record: dict[str, Any], *, subject: str | None = None, sequence: int = 1) -> Outbound:
        """`record` as an Outbound with a new message id (and a new resident unless `subject`)."""
        envelope = Envelope(
            message_id=uuid.uuid4().hex,
            kind=self.kind,
            schema_version=self.schema.version,
            content_type="application/xml",
            municipality=self.municipality,
            source="conformance",
            subject=subject or new_subject(),
            sequence=sequence,
            destination=self.destination,
            route=f"{self.destination}-conformance",
        )
        return Outbound(envelope, record, self.schema.to_xml(record))


def _fill_longest(record: dict[str, Any], fields: tuple[Field, ...]) -> int:
    """Set every text field present in `record` to its maxLength; how many were set."""
    count = 0
    for f in fields:
        value = record.get(f.name)
        if f.type == "record" and isinstance(value, dict):
            count += _fill_longest(value, f.children)
        elif f.type == "string" and isinstance(value, str) and "maxLength" in f.facets:
            pattern = str(f.facets.get("pattern", ""))
            if pattern and "ァ" not in pattern:
                continue  # digits, codes: their length is fixed by the pattern
            record[f.name] = ("ア" if pattern else "亜") * int(f.facets["maxLength"])
            count += 1
    return count


def _optional_paths(fields: tuple[Field, ...], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for f in fields:
        path = f"{prefix}{f.name}"
        if f.optional:
            paths.append(path)
        elif f.type == "record":
            paths += _optional_paths(f.children, path + "/")
    return paths


def _parent(record: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    *parents, name = path.split("/")
    node: Any = record
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), name


def new_subject() -> str:
    """A resident pseudonym as the bus makes them (32 hex digits), random for each run."""
    return secrets.token_hex(16)
