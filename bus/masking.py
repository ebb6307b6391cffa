"""Pseudonyms and masking: personal data never leaves in plain text.

- `Pseudonymizer` turns a 宛名番号 (address number) into the keyed HMAC pseudonym used as
  the envelope `subject`, in the audit trail and in logs. Keyed per municipality, so the
  same person in two municipalities has unrelated pseudonyms.
- `mask_value` shows an operator enough to recognise a value without revealing it.
- `personal_fields()` names the fields that are personal (leaf names): every field the schema
  catalog's fields.yaml marks `personal: true`, in any kind, version or nested record — said
  once, there — and the few names that are not message fields (`OUTSIDE_THE_CATALOG`).
  Every view masks from it: dead letters, validation errors, logs, `renkei routes test`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os

from lxml import etree

__all__ = ["OUTSIDE_THE_CATALOG", "Pseudonymizer", "is_personal", "mask_record", "mask_value", "mask_xml",
           "personal_fields"]

#: Names that are personal wherever they occur but are no field of a message kind: what the
#: bus's code and vendors' adapters may pass to a log call (a person's whole name, a phone).
#: Every message field that is personal is marked in the catalog, never here.
OUTSIDE_THE_CATALOG: frozenset[str] = frozenset({
    "name", "full_name", "full_name_kana", "householder_name", "householder_address_number", "applicant_name",
    "address_line", "phone", "email",
})


def personal_fields() -> frozenset[str]:
    """Leaf names of the personal fields: the catalog's (`personal: true`) and OUTSIDE_THE_CATALOG.
    Read once per catalog root (RENKEI_SCHEMAS_DIR or the shipped schemas); raises ConfigError
    when there is no catalog."""
    return _catalog_personal(os.environ.get("RENKEI_SCHEMAS_DIR"))


@functools.cache
def _catalog_personal(_override: str | None) -> frozenset[str]:
    from bus.catalog.codelists import CodeLists
    from bus.catalog.spec import iter_leaves, load_spec
    from bus.errors import ConfigError
    from bus.paths import schemas_dir

    root = schemas_dir()
    if not (root / "codelists.yaml").is_file():
        raise ConfigError("no schema catalog here (codelists.yaml missing), so which fields are personal is "
                          "unknown; set RENKEI_SCHEMAS_DIR", where=str(root))
    codelists = CodeLists.load(root / "codelists.yaml")
    names = set(OUTSIDE_THE_CATALOG)
    for path in sorted(root.glob("*/*/fields.yaml")):
        names.update(_leaf(p) for p, f in iter_leaves(load_spec(path, codelists).fields) if f.personal)
    return frozenset(names)


def _leaf(path: str) -> str:
    leaf = path.rstrip("/").rsplit("/", 1)[-1].split("[", 1)[0]
    return leaf.split("}", 1)[-1]  # drop an XML namespace


def is_personal(path: str) -> bool:
    """True when the last segment of a field path (``a/b/family_name``) is personal."""
    return _leaf(path) in personal_fields()


def mask_value(value: object) -> str:
    """Mask a personal value: keep its length class, never its content.

    ``"123456789018"`` → ``"************ (12 chars)"``; text is masked the same way.
    """
    text = "" if value is None else str(value)
    return f"{'*' * min(len(text), 12)} ({len(text)} chars)"


def mask_record(record: object) -> object:
    """A copy of a decoded message with every personal leaf masked (what an operator sees).

    Records nest (``name.family_name``): a personal key whose value is a record is masked
    leaf by leaf, so the shape stays readable; every other leaf is kept as text."""
    if isinstance(record, dict):
        personal = personal_fields()
        return {k: _mask_all(v) if k in personal else mask_record(v) for k, v in record.items()}
    if isinstance(record, list | tuple):
        return [mask_record(v) for v in record]
    return record if record is None or isinstance(record, bool | int | float | str) else str(record)


def _mask_all(value: object) -> object:
    if isinstance(value, dict):
        return {k: _mask_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_all(v) for v in value]
    return None if value is None else mask_value(value)


def mask_xml(xml: bytes | str) -> str:
    """An XML message as text with the text of every personal element (and everything inside
    it) masked: what `renkei routes test` prints unless asked for the values."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml, parser)
    personal = personal_fields()
    for element in root.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname in personal:
            for inner in element.iter():
                if inner.text and inner.text.strip():
                    inner.text = mask_value(inner.text)
    return etree.tostring(root, pretty_print=True, encoding="unicode")


class Pseudonymizer:
    """Keyed HMAC-SHA256 pseudonyms of 宛名番号, per municipality."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes")
        self._key = key

    def subject(self, municipality: str, address_number: str) -> str:
        """The envelope `subject` of a resident: stable, unlinkable without the key."""
        return self._digest(f"subject|{municipality}|{address_number}")[:32]

    def message_id(self, municipality: str, address_number: str, history_number: int) -> str:
        """The `message_id` of one change: (municipality, 宛名番号, 履歴番号) → id."""
        return self._digest(f"change|{municipality}|{address_number}|{history_number}")[:32]

    def _digest(self, text: str) -> str:
        return hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).hexdigest()
