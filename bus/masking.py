"""Pseudonyms and masking: personal data never leaves in plain text.

- `Pseudonymizer` turns a 宛名番号 (address number) into the keyed HMAC pseudonym used as
  the envelope `subject`, in the audit trail and in logs. Keyed per municipality, so the
  same person in two municipalities has unrelated pseudonyms.
- `mask_value` shows an operator enough to recognise a value without revealing it.
- `PERSONAL_FIELDS` names the message fields that are personal (leaf names).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["PERSONAL_FIELDS", "Pseudonymizer", "is_personal", "mask_record", "mask_value"]

#: Leaf field names whose values are personal data (特定個人情報 or 個人情報).
PERSONAL_FIELDS: frozenset[str] = frozenset(
    {
        "personal_number",  # 個人番号
        "address_number",  # 宛名番号
        "integrated_address_number",  # 団体内統合宛名番号
        "resident_code",  # 住民票コード
        "household_number",  # 世帯番号
        "householder_address_number",
        "family_name",
        "given_name",
        "family_name_kana",
        "given_name_kana",
        "former_family_name",
        "former_family_name_kana",
        "alias_name",
        "alias_name_kana",
        "householder_name",
        "full_name",
        "full_name_kana",
        "name",
        "birth_date",
        "postal_code",
        "town",
        "banchi",
        "building",
        "address_line",
        "phone",
        "email",
        "body",
        "title",
        "applicant_name",
    }
)


def is_personal(path: str) -> bool:
    """True when the last segment of a field path (``a/b/family_name``) is personal."""
    leaf = path.rstrip("/").rsplit("/", 1)[-1].split("[", 1)[0]
    leaf = leaf.split("}", 1)[-1]  # drop an XML namespace
    return leaf in PERSONAL_FIELDS


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
        return {k: _mask_all(v) if k in PERSONAL_FIELDS else mask_record(v) for k, v in record.items()}
    if isinstance(record, list | tuple):
        return [mask_record(v) for v in record]
    return record if record is None or isinstance(record, bool | int | float | str) else str(record)


def _mask_all(value: object) -> object:
    if isinstance(value, dict):
        return {k: _mask_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_all(v) for v in value]
    return None if value is None else mask_value(value)


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
