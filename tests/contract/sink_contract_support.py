"""Helpers for sink tests: build an Outbound, and a validator that needs no catalog.

`outbound()` builds a message from a real catalog sample when the catalog can be loaded
(the record decoded from `schemas/<kind>/1/samples/valid/*.xml`, re-encoded with
``ks.to_xml``); `plain_outbound()` builds one from a small dict with hand-made XML, for
tests that must not depend on the catalog.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from lxml import etree

from bus.envelope import Envelope
from bus.errors import ValidationFailed
from bus.ports import Outbound
from bus.validation.issues import Issue

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
_ids = itertools.count(1)


def envelope(kind: str, destination: str, *, message_id: str | None = None, sequence: int = 1) -> Envelope:
    return Envelope(
        message_id=message_id or f"m{next(_ids):031d}",
        kind=kind,
        schema_version=1,
        content_type="application/xml",
        municipality="131016",
        source="kiban",
        subject="5f2c0e7d9a1b4c3d8e6f7a8b9c0d1e2f",
        sequence=sequence,
        destination=destination,
        route=f"{destination}-default",
    )


SAMPLE_RECORD: dict[str, Any] = {
    "municipality_code": "131016",
    "history_number": 3,
    "change": {"reason": "TENKYO", "effective_date": date(2025, 4, 1)},
    "name": {"family_name": "髙橋", "given_name": "一郎", "family_name_kana": "タカハシ"},
    "birth_date": date(1980, 1, 2),
    "address": {"postal_code": "1000001", "city": "千代田区", "town": "千代田", "banchi": "1番1号"},
    "insured": True,
}


def plain_outbound(
    record: dict[str, Any] | None = None,
    *,
    kind: str = "zei.jumin",
    destination: str = "zei",
    message_id: str | None = None,
) -> Outbound:
    """An Outbound from a dict, with XML made by hand (namespace of the kind, no catalog)."""
    record = dict(SAMPLE_RECORD if record is None else record)
    ns = f"urn:renkei:schema:{kind}:1"
    root = etree.Element(f"{{{ns}}}ResidentNotice", nsmap={None: ns})
    _fill(root, record, ns)
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return Outbound(envelope(kind, destination, message_id=message_id), record, xml)


def _fill(parent: Any, record: dict[str, Any], ns: str) -> None:
    for key, value in record.items():
        if value is None:
            continue
        child = etree.SubElement(parent, f"{{{ns}}}{key}")
        if isinstance(value, dict):
            _fill(child, value, ns)
        elif isinstance(value, bool):
            child.text = "true" if value else "false"
        elif isinstance(value, date):
            child.text = value.isoformat()
        else:
            child.text = str(value)


@functools.cache
def catalog() -> Any:
    """The real catalog, or None when it cannot be loaded here."""
    try:
        from bus.catalog import Catalog

        return Catalog.load()
    except Exception:
        return None


def sample_record(kind: str, name: str | None = None) -> dict[str, Any]:
    """A valid sample's record (decoded by the catalog)."""
    cat = catalog()
    assert cat is not None, "the schema catalog is not available"
    files = sorted((SCHEMAS / kind / "1" / "samples" / "valid").glob("*.xml"))
    chosen = next(f for f in files if name is None or f.stem == name)
    ks = cat.get(kind)
    root = etree.fromstring(chosen.read_bytes(), etree.XMLParser(resolve_entities=False, no_network=True))
    record: dict[str, Any] = ks.from_xml(root)
    return record


def outbound(
    kind: str = "zei.jumin",
    destination: str = "zei",
    *,
    record: dict[str, Any] | None = None,
    message_id: str | None = None,
    sequence: int = 1,
) -> Outbound:
    """A real, schema-valid Outbound for `kind` (from a catalog sample unless `record`)."""
    cat = catalog()
    if cat is None:
        return plain_outbound(record, kind=kind, destination=destination, message_id=message_id)
    record = record if record is not None else sample_record(kind)
    xml = cat.get(kind).to_xml(record)
    return Outbound(envelope(kind, destination, message_id=message_id, sequence=sequence), record, xml)


@dataclass
class Checked:
    record: dict[str, Any]


def namespace_validator(raw: bytes, *, content_type: str, kind: str | None, catalog: Any = None) -> Checked:
    """A stand-in for bus.validation.validator.validate: checks only the root namespace."""
    if content_type != "application/xml":
        import json

        return Checked(json.loads(raw))
    try:
        root = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    except etree.XMLSyntaxError as exc:
        raise ValidationFailed([Issue("R200", f"not well-formed: {exc.msg}")]) from None
    expected = f"urn:renkei:schema:{kind}:1"
    if etree.QName(root).namespace != expected:
        raise ValidationFailed([Issue("R220", "wrong kind", "/", expected=expected)])
    return Checked({etree.QName(e).localname: e.text for e in root.iter() if len(e) == 0})
