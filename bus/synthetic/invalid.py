"""Broken and repeated messages for the demo and the tests: what a validator must catch.

    bad, code = corrupt(record, rng)            # e.g. (record with a wrong check digit, "R401")
    bad, code = corrupt(record, rng, "R300")    # XML bytes missing a required element

`corrupt` never changes its input; every variant breaks exactly one rule, so the validator
reports the expected code and nothing else. `noisy` mixes such variants and re-sent
duplicates into a stream of valid records.
"""

from __future__ import annotations

import random
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

from lxml import etree

from bus.catalog import Catalog
from bus.synthetic.factory import new_personal_number

__all__ = ["CODES", "DEMO_CODES", "copy_record", "corrupt", "noisy", "with_duplicates"]

_Rec = dict[str, Any]
_ADVANCE = ("TENSHUTSU", "KOKUGAI_TENSHUTSU")
_catalog: list[Catalog] = []


def copy_record(record: _Rec) -> _Rec:
    """A deep copy of a record (dicts and lists copied; dates and strings are immutable)."""
    return {k: _copy(v) for k, v in record.items()}


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _bad_digit(number: str, rng: random.Random) -> str:
    return number[:-1] + str((int(number[-1]) + rng.randint(1, 9)) % 10)


def _r401(r: _Rec, rng: random.Random) -> None:
    r["personal_number"] = _bad_digit(r["personal_number"] or new_personal_number(rng), rng)


def _r402(r: _Rec, rng: random.Random) -> None:
    r["municipality_code"] = _bad_digit(r["municipality_code"], rng)


def _r403(r: _Rec, rng: random.Random) -> None:
    r["resident_code"] = _bad_digit(r["resident_code"], rng)


def _r410(r: _Rec, rng: random.Random) -> None:
    change = r["change"]
    how = rng.randrange(3)
    if how == 0 or (how == 1 and change["reason"] in _ADVANCE):
        change["notified_date"] = change["processed_date"] + timedelta(days=rng.randint(1, 10))
    elif how == 1:
        change["processed_date"] = change["effective_date"] - timedelta(days=rng.randint(1, 30))
        change["notified_date"] = None
    else:
        r["birth_date"] = change["effective_date"] + timedelta(days=rng.randint(1, 400))


def _r430(r: _Rec, rng: random.Random) -> None:
    change = r["change"]
    change["reason"], change["cancelled_history_number"] = "TENSHUTSU", None
    r["resident_status"] = "REMOVED"
    r["moved_out_to"] = r["moved_out_country"] = None


def _r440(r: _Rec, rng: random.Random) -> None:
    name = r["name"]["family_name"]
    i = rng.randrange(len(name))
    name = name[:i] + chr(0xE000 + rng.randrange(0x1000)) + name[i + 1 :]  # vendor 外字
    r["name"]["family_name"] = name


def _r441(r: _Rec, rng: random.Random) -> None:
    kana = r["name"]["given_name_kana"]
    decomposed = unicodedata.normalize("NFD", kana)
    r["name"]["given_name_kana"] = decomposed if decomposed != kana else kana + "カ\u3099"  # カ + ゛


#: code → what the variant breaks
CODES: dict[str, str] = {
    "R300": "a required element (生年月日) removed from the XML",
    "R401": "wrong 個人番号 check digit",
    "R402": "wrong 地方公共団体コード check digit",
    "R403": "wrong 住民票コード check digit",
    "R410": "dates out of order (届出日 after 処理日, 処理日 before 異動日, or born after 異動日)",
    "R430": "転出 (TENSHUTSU) without 転出先住所 (moved_out_to)",
    "R440": "a private-use 外字 in the family name",
    "R441": "a kana name not in NFC (カ + combining ゛)",
}
_BREAK: dict[str, Callable[[_Rec, random.Random], None]] = {
    "R401": _r401, "R402": _r402, "R403": _r403, "R410": _r410, "R430": _r430, "R440": _r440, "R441": _r441,
}
#: the codes `corrupt` picks from when none is asked for (DESIGN's demo set)
DEMO_CODES = ("R300", "R401", "R410", "R430", "R440")


def _default_catalog() -> Catalog:
    if not _catalog:
        _catalog.append(Catalog.load())
    return _catalog[0]


def corrupt(
    record: _Rec,
    rng: random.Random,
    code: str | None = None,
    *,
    catalog: Catalog | None = None,
    kind: str = "jumin.idou",
) -> tuple[_Rec | bytes, str]:
    """(a broken copy of `record`, the error code the validator must report).

    R300 comes back as XML bytes (``kind``'s XML without its ``birth_date`` element); every
    other code as a record dict, schema-valid, breaking one rule (see `CODES`).
    """
    code = code or DEMO_CODES[rng.randrange(len(DEMO_CODES))]
    if code == "R300":
        ks = (catalog or _default_catalog()).get(kind)
        root = etree.fromstring(ks.to_xml(record))
        for element in root.iter(f"{{{ks.namespace}}}birth_date"):
            parent = element.getparent()
            assert parent is not None
            parent.remove(element)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8"), code
    if code not in _BREAK:
        raise ValueError(f"cannot make a {code} variant; known: {', '.join(sorted(CODES))}")
    broken = copy_record(record)
    _BREAK[code](broken, rng)
    return broken, code


def with_duplicates(
    records: Iterable[_Rec], rng: random.Random, rate: float = 0.05, window: int = 20
) -> Iterator[_Rec]:
    """The records, and now and then a copy of one of the last `window` sent again (a duplicate)."""
    recent: deque[_Rec] = deque(maxlen=window)
    for record in records:
        yield record
        recent.append(record)
        if rng.random() < rate:
            yield copy_record(recent[rng.randrange(len(recent))])


def noisy(
    records: Iterable[_Rec],
    rng: random.Random,
    *,
    invalid: float = 0.02,
    duplicates: float = 0.02,
    codes: tuple[str, ...] = DEMO_CODES,
    catalog: Catalog | None = None,
) -> Iterator[tuple[_Rec | bytes, str | None]]:
    """(message, expected) pairs: expected is None (valid), ``"duplicate"`` or an error code.

    A broken message is sent *before* its valid record, as a source does that gets the
    errors back and sends the corrected change: every change still arrives, in order.
    """
    recent: deque[_Rec] = deque(maxlen=20)
    for record in records:
        if rng.random() < invalid:
            yield corrupt(record, rng, codes[rng.randrange(len(codes))], catalog=catalog)
        yield record, None
        recent.append(record)
        if rng.random() < duplicates:
            yield copy_record(recent[rng.randrange(len(recent))]), "duplicate"
