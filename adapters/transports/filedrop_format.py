"""The file drop's formats (adapters/transports/filedrop.py): records flattened to columns,
fixed-width layouts from an Avro schema, text in the receiver's encoding (cp932 or jisx0208, with
〓 for what it cannot hold), and the atomic, fsync'd write of a file."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from lxml import etree

from bus.errors import ConfigError
from bus.validation.degrade import can_encode

__all__ = [
    "CODECS", "DEFAULT_WIDTHS", "FOLDS", "GETA", "as_text", "default_width", "encodable", "fixed_layout", "flatten",
    "fsync_dir", "unmappable", "write_atomic", "xml_texts",
]

GETA = "\u3013"  # 〓: what a receiver's encoding cannot hold is written as this

#: the sink's encoding name → the Python codec that writes its bytes. "jisx0208" is Shift_JIS
#: bytes of ASCII/JIS X 0201 Roman + JIS X 0208 only (no NEC/IBM extensions, no user area); the
#: shift_jis codec also takes half-width katakana (JIS X 0201 Katakana), which `unmappable`
#: refuses: the repertoire is bus.validation.degrade's, so whatever degrade leaves is writable.
CODECS: dict[str, str] = {"utf-8": "utf-8", "cp932": "cp932", "jisx0208": "shift_jis"}

#: JIS/Microsoft variant pairs folded, before encoding, to the code point the encoding holds
#: (the two code points are one character written at the same Shift_JIS position). CP932's codec
#: takes 〜 U+301C, ‖, −, ¢, £, ¬ itself; only — U+2014 needs folding to ― U+2015 (0x815C).
#: Python's shift_jis takes only the JIS forms, so the Microsoft ones are folded to them.
FOLDS: dict[str, dict[int, str]] = {
    "utf-8": {},
    "cp932": {0x2014: "\u2015"},
    "jisx0208": {
        0x2014: "\u2015",  # — → ― (0x815C)
        0xFF5E: "\u301C",  # ～ → 〜 (0x8160)
        0x2225: "\u2016",  # ∥ → ‖ (0x8161)
        0xFF0D: "\u2212",  # － → − (0x817C)
        0xFFE0: "\u00A2",  # ￠ → ¢ (0x8191)
        0xFFE1: "\u00A3",  # ￡ → £ (0x8192)
        0xFFE2: "\u00AC",  # ￢ → ¬ (0x81CA)
    },
}

#: fixed-width defaults in bytes, by leaf field name (override with `layout`)
DEFAULT_WIDTHS: dict[str, int] = {
    "municipality_code": 6,
    "address_number": 15,
    "history_number": 6,
    "resident_code": 11,
    "personal_number": 12,
    "integrated_address_number": 15,
    "household_number": 15,
    "cancelled_history_number": 6,
    "postal_code": 7,
    "prefecture": 12,
    "city": 30,
    "town": 90,
    "banchi": 60,
    "building": 90,
    "family_name": 60,
    "given_name": 60,
    "family_name_kana": 90,
    "given_name_kana": 90,
    "former_family_name": 60,
    "former_family_name_kana": 90,
    "alias_name": 60,
    "alias_name_kana": 90,
    "nationality": 2,
    "moved_out_country": 2,
    "reason": 20,
    "sex": 6,
    "relationship": 16,
    "resident_type": 8,
    "resident_status": 8,
    "nenkin_category": 6,
}


def flatten(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}, "c": [x]}`` → ``[("a.b", 1), ("c.0", x)]``, in record order."""
    out: list[tuple[str, Any]] = []
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += flatten(value, path + ".")
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    out += flatten(item, f"{path}.{i}.")
                else:
                    out.append((f"{path}.{i}", item))
        else:
            out.append((path, value))
    return out


def fixed_layout(schema: Mapping[str, Any], widths: Mapping[str, int] | None = None) -> list[tuple[str, int]]:
    """A stable fixed-width layout from an Avro record schema (nested records flattened).

    Widths come from `widths` (by dotted path or leaf name), then `DEFAULT_WIDTHS`, then
    the type: date 8, boolean 1, int/long 10, enum the longest symbol, string 40.
    """
    table = {**DEFAULT_WIDTHS, **(widths or {})}
    return list(_schema_fields(schema, "", table, {}))


def _schema_fields(
    schema: Any, prefix: str, table: Mapping[str, int], named: dict[str, Any]
) -> Iterator[tuple[str, int]]:
    _register(schema, named)
    for field in schema.get("fields", []):
        path = prefix + field["name"]
        ftype = field["type"]
        if isinstance(ftype, list):  # ["null", T]
            branches = [t for t in ftype if t != "null"]
            if len(branches) != 1:
                raise ConfigError(f"fixed layout: field {path} is a union the layout cannot hold")
            ftype = branches[0]
        if isinstance(ftype, str) and ftype in named:
            ftype = named[ftype]  # a reference to a named type defined earlier
        elif isinstance(ftype, dict):
            _register(ftype, named)
        if isinstance(ftype, dict) and ftype.get("type") == "record":
            yield from _schema_fields(ftype, path + ".", table, named)
            continue
        if isinstance(ftype, dict) and ftype.get("type") in ("array", "map"):
            raise ConfigError(f"fixed layout: field {path} is a list, which fixed-width cannot hold")
        width = table.get(path) or table.get(field["name"])
        if width is None:
            width = _type_width(ftype)
        yield path, width


def _register(schema: Any, named: dict[str, Any]) -> None:
    """Remember a named type under its short and full name (Avro allows both references)."""
    name = schema.get("name") if isinstance(schema, dict) else None
    if not name:
        return
    named[name] = schema
    named[name.rsplit(".", 1)[-1]] = schema
    if schema.get("namespace"):
        named[f"{schema['namespace']}.{name}"] = schema


def _type_width(ftype: Any) -> int:
    if isinstance(ftype, dict):
        if ftype.get("logicalType") == "date":
            return 8
        if ftype.get("type") == "enum":
            return max((len(s) for s in ftype.get("symbols", [])), default=1)
        ftype = ftype.get("type")
    return {"boolean": 1, "int": 10, "long": 19}.get(str(ftype), 40)


def default_width(path: str, value: Any) -> int:
    leaf = path.rsplit(".", 1)[-1]
    if leaf in DEFAULT_WIDTHS:
        return DEFAULT_WIDTHS[leaf]
    if isinstance(value, bool):
        return 1
    if isinstance(value, date):
        return 8
    if isinstance(value, int):
        return 10
    return 40


def as_text(value: Any, dates: Literal["iso", "compact"]) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return ("true" if value else "false") if dates == "iso" else ("1" if value else "0")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat() if dates == "iso" else value.strftime("%Y%m%d")
    return str(value)


def unmappable(char: str, encoding: str) -> bool:
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return True  # a lone surrogate is never text
    if encoding == "utf-8":
        return False
    if 0xE000 <= code <= 0xF8FF or code >= 0xF0000:
        return True  # private use (外字): never map silently into CP932's user area
    if encoding == "jisx0208":
        return not can_encode(char, "jisx0208")  # ASCII/JIS X 0201 Roman + JIS X 0208 (no half-width kana)
    try:
        char.encode(encoding)
    except UnicodeEncodeError:
        return True
    return False


def encodable(text: str, encoding: str) -> str:
    return "".join(GETA if unmappable(c, encoding) else c for c in text)


def xml_texts(root: Any) -> Iterable[tuple[str, str]]:
    """(dotted path of local names below the root, text) for every text and attribute."""

    def walk(element: Any, path: str) -> Iterator[tuple[str, str]]:
        for name, value in element.attrib.items():
            yield f"{path}@{etree.QName(name).localname}", value
        if element.text:
            yield path or etree.QName(element).localname, element.text
        for child in element:
            if not isinstance(child.tag, str):
                continue  # comments, processing instructions
            name = etree.QName(child).localname
            yield from walk(child, f"{path}.{name}" if path else name)
            if child.tail:
                yield path or etree.QName(element).localname, child.tail

    return walk(root, "")


def write_atomic(directory: Path, name: str, data: bytes, *, overwrite: bool) -> bool:
    """Write `data` as directory/name via a fsynced temp file; False if it already existed."""
    tmp = directory / f".{name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        target = directory / name
        if overwrite:
            os.replace(tmp, target)
            return True
        try:
            os.link(tmp, target)  # atomic and never clobbers: a racing twin gets FileExistsError
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if target.exists():
                return False
            os.replace(tmp, target)  # no hard links here (e.g. some network shares)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
