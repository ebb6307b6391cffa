"""Message records ⇄ XML, by a plan compiled once per kind from its field spec.

A record is a dict shaped like the kind's Avro record (docs/architecture.md): keys in spec
order, `None` for a missing optional, `datetime.date` for dates, aware `datetime` for
date-times, lists for lists. XML element names equal the keys; a list is a wrapper element
holding one ``<item>`` per entry.

The writer builds the text directly (escaping &, <, > and CR; refusing characters XML
cannot carry); the reader walks the lxml tree. Date-times are written in Japan Standard Time
with milliseconds (``2025-04-01T09:30:00.000+09:00``), the canonical form; a naive datetime
is taken as UTC, as fastavro takes it. Reading does not validate: validate with the XSD first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from lxml import etree

from bus.catalog.spec import Field, KindSpec

__all__ = ["JST", "XmlCodec", "format_datetime"]

JST = timezone(timedelta(hours=9), "JST")

Reader = Callable[[etree._Element], Any]
Writer = Callable[[list[str], Any], None]
# the keys in order, and Clark tag -> (key, reader) per child of a record
_ReadPlan = tuple[list[str], dict[str, tuple[str, Reader]]]
# (key, "<key>", "</key>", format, writer) per field of a record: a scalar has its format
# (value -> text, written in one append), a record or list its writer
_WritePlan = list[tuple[str, str, str, Callable[[Any], str] | None, Writer | None]]

_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"
#: characters that need escaping, or that XML 1.0 cannot carry at all
_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def format_datetime(value: datetime) -> str:
    """The canonical XML form of a date-time: JST, milliseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(JST).isoformat(timespec="milliseconds")


class XmlCodec:
    """to_xml / from_xml for one kind; build once, reuse (the plans are immutable)."""

    def __init__(self, spec: KindSpec) -> None:
        self.namespace = spec.namespace
        self.root_tag = f"{{{spec.namespace}}}{spec.root_element}"
        self._item_tag = f"{{{spec.namespace}}}item"
        self._read_plan = self._reads(spec.fields)
        self._write_plan = self._writes(spec.fields)
        self._open = f'{_DECLARATION}<{spec.root_element} xmlns="{_escape(spec.namespace)}">'
        self._close = f"</{spec.root_element}>"

    def to_xml(self, record: dict[str, Any]) -> bytes:
        parts = [self._open]
        _write_record(parts, record, self._write_plan)
        parts.append(self._close)
        return "".join(parts).encode("utf-8")

    def from_xml(self, root: etree._Element) -> dict[str, Any]:
        if root.tag != self.root_tag:
            raise ValueError(f"expected root element {self.root_tag}, got {root.tag}")
        return _read_record(root, self._read_plan)

    # --- plans -----------------------------------------------------------------------

    def _reads(self, fields: tuple[Field, ...]) -> _ReadPlan:
        table = {f"{{{self.namespace}}}{f.name}": (f.name, self._reader(f)) for f in fields}
        return [f.name for f in fields], table

    def _reader(self, f: Field) -> Reader:
        if f.type == "record":
            plan = self._reads(f.children)
            return lambda el: _read_record(el, plan)
        if f.type == "list" and f.item is not None:
            item, tag = self._reader(f.item), self._item_tag
            return lambda el: [item(child) for child in el if child.tag == tag]
        return _SCALAR_READERS[f.type]

    def _writes(self, fields: tuple[Field, ...]) -> _WritePlan:
        return [(f.name, f"<{f.name}>", f"</{f.name}>", _FORMATS.get(f.type), self._writer(f)) for f in fields]

    def _writer(self, f: Field) -> Writer:
        if f.type == "record":
            plan = self._writes(f.children)
            return lambda parts, value: _write_record(parts, value, plan)
        if f.type == "list" and f.item is not None:
            item = self._writer(f.item)

            def write_list(parts: list[str], value: Any) -> None:
                for entry in value:
                    parts.append("<item>")
                    item(parts, entry)
                    parts.append("</item>")

            return write_list
        fmt = _FORMATS[f.type]
        return lambda parts, value: parts.append(fmt(value))


def _read_record(el: etree._Element, plan: _ReadPlan) -> dict[str, Any]:
    keys, table = plan
    out: dict[str, Any] = dict.fromkeys(keys)
    for child in el:
        entry = table.get(child.tag)
        if entry is None:
            if isinstance(child.tag, str):
                raise ValueError(f"unexpected element {child.tag} in {el.tag}")
            continue  # comment or processing instruction
        out[entry[0]] = entry[1](child)
    return out


def _write_record(parts: list[str], record: dict[str, Any], plan: _WritePlan) -> None:
    for key, open_tag, close_tag, fmt, write in plan:
        value = record.get(key)
        if value is None:
            continue
        if fmt is not None:  # a scalar: one append, no call through a writer
            parts.append(f"{open_tag}{fmt(value)}{close_tag}")
        elif write is not None:
            parts.append(open_tag)
            write(parts, value)
            parts.append(close_tag)


def _escape(text: str) -> str:
    if _SPECIAL.search(text) is None:
        return text
    if _NOT_XML.search(text) is not None:
        raise ValueError(f"text holds a character XML cannot carry: {text!r}")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _text(el: etree._Element) -> str:
    return el.text or ""


def _boolean(el: etree._Element) -> bool:
    text = (el.text or "").strip()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not an xs:boolean: {text!r}")


def _format_boolean(value: Any) -> str:
    if not isinstance(value, bool):
        raise TypeError(f"expected a bool, got {type(value).__name__}")
    return "true" if value else "false"


def _format_int(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int, got {type(value).__name__}")
    return str(value)


def _format_date(value: Any) -> str:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"expected a datetime.date, got {type(value).__name__}")
    return value.isoformat()


def _format_datetime(value: Any) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return format_datetime(value)


def _format_string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a str, got {type(value).__name__}")
    return _escape(value)


_SCALAR_READERS: dict[str, Reader] = {
    "string": _text,
    "enum": _text,
    "int": lambda el: int((el.text or "").strip()),
    "boolean": _boolean,
    "date": lambda el: date.fromisoformat((el.text or "").strip()),
    "datetime": lambda el: datetime.fromisoformat((el.text or "").strip()),
}
_FORMATS: dict[str, Callable[[Any], str]] = {
    "string": _format_string,
    "enum": _format_string,
    "int": _format_int,
    "boolean": _format_boolean,
    "date": _format_date,
    "datetime": _format_datetime,
}
