"""The CSV file layout of a kind, and its encoding in UTF-8 or CP932 (Shift_JIS).

The layout is the kind's own fields (``schemas/<kind>/<v>/fields.yaml``, the source of its XSD
and Avro schema) in schema order, one column per leaf, so it is defined once, beside them;
docs/file-layouts.md is generated from it (``python3 -m adapters.transports.csv_layout``).
A file is:

    header        the column names: the Japanese label, then the field path in brackets,
                  e.g. ``異動事由[change/reason]``; the file sink puts ``連携キー[key]`` first
    data rows     RFC 4180 CSV, CRLF; empty = absent; booleans 1/0; dates YYYY-MM-DD
    control       ``#renkei-control,rows=<N>,sha256=<hex>``: the count of data rows and the
                  SHA-256 of every byte before this line (optional for files sent to renkei)

Characters the encoding cannot hold (CP932 has no 𠮷, no 鷗) and private-use
characters (外字) are reported with row, column and code point, never replaced: the
caller decides (the file sink refuses the message; the inbox rejects the file).
Kinds holding a list (portal.shinsei) have no CSV layout.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from adapters.transports.filedrop_format import FOLDS
from bus.catalog.spec import Field, iter_leaves
from bus.errors import ConfigError

__all__ = [
    "CONTROL_PREFIX",
    "Column",
    "Layout",
    "Unmappable",
    "UnmappableError",
    "check_characters",
    "control_record",
    "fold",
    "layout_docs",
    "split_control",
    "width_of",
]

CONTROL_PREFIX = b"#renkei-control,"
ENCODINGS = ("utf-8", "cp932")
_BOUNDED = re.compile(r"(\[[^\]]+\])?\[[^\]]+\]\{(?:\d+,)?(\d+)\}")


@dataclass(frozen=True, slots=True)
class Column:
    path: str  # e.g. change/reason
    label: str  # 異動事由
    field: Field
    required: bool = True  # the field and every record it is in are required

    @property
    def header(self) -> str:
        return f"{self.label}[{self.path}]"


@dataclass(frozen=True, slots=True)
class Unmappable:
    """One character a file cannot hold: where, and which (the code point, never the value)."""

    row: int
    column: str
    code_point: str
    why: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.code_point} {self.why}"


class UnmappableError(ValueError):
    def __init__(self, found: Sequence[Unmappable]) -> None:
        self.found = tuple(found)
        shown = "; ".join(str(u) for u in self.found[:5])
        more = f" (and {len(self.found) - 5} more)" if len(self.found) > 5 else ""
        super().__init__(f"characters that cannot be written: {shown}{more}")


class Layout:
    """The columns of one kind, and its records as rows and back."""

    def __init__(self, kind_schema: Any) -> None:
        self.kind = kind_schema.kind
        self.version = kind_schema.version
        self.kind_schema = kind_schema
        lists = [p for p, f in iter_leaves(kind_schema.fields) if f.type == "list"]
        if lists:
            raise ConfigError(f"{self.kind} has no CSV layout: it holds a list ({', '.join(lists)})")
        self._records = {p: f for p, f in iter_leaves(kind_schema.fields) if f.type == "record"}

        def required(path: str, f: Field) -> bool:
            parts = path.split("/")
            within = ("/".join(parts[:i]) for i in range(1, len(parts)))
            return not f.optional and not any(self._records[p].optional for p in within)

        self.columns = tuple(Column(p, f.label_ja or p, f, required(p, f)) for p, f in iter_leaves(kind_schema.fields)
                             if f.type != "record")

    def headers(self) -> list[str]:
        return [c.header for c in self.columns]

    def row(self, record: dict[str, Any]) -> list[str]:
        return [_text(_get(record, c.path)) for c in self.columns]

    def record(self, row: Sequence[str], where: str = "") -> dict[str, Any]:
        """The record of one data row (ValueError naming the column when a value does not parse)."""
        if len(row) != len(self.columns):
            raise ValueError(f"{where}{len(row)} columns, the layout of {self.kind} has {len(self.columns)}")
        record: dict[str, Any] = {}
        for column, text in zip(self.columns, row, strict=True):
            try:
                value = _parse(text, column.field)
            except ValueError:
                raise ValueError(f"{where}column {column.header}: not a {column.field.type}") from None
            _put(record, column.path, value)
        for path, f in sorted(self._records.items(), key=lambda kv: -kv[0].count("/")):
            if f.optional and _all_empty(_get(record, path)):
                _put(record, path, None)
        return record


def encode_rows(rows: Iterable[Sequence[str]], encoding: str, *, first_row: int = 1,
                headers: Sequence[str] | None = None) -> bytes:
    """CSV lines (CRLF) in `encoding`; UnmappableError listing every character it cannot hold."""
    if encoding not in ENCODINGS:
        raise ConfigError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    found: list[Unmappable] = []
    for n, row in enumerate(rows, first_row):
        row = fold(row, encoding)
        found += check_characters(row, encoding, n, headers)
        writer.writerow(row)
    if found:
        raise UnmappableError(found)
    return out.getvalue().encode(encoding)


def fold(row: Sequence[str], encoding: str) -> list[str]:
    """`row` with each JIS/Microsoft variant pair written as `encoding` holds it (filedrop_format.FOLDS:
    in CP932, — U+2014 as ― U+2015, the same position 0x815C), as the file-drop sink writes it."""
    table = FOLDS.get(encoding) or {}
    return [cell.translate(table) for cell in row] if table else list(row)


def check_characters(row: Sequence[str], encoding: str, row_number: int,
                     headers: Sequence[str] | None = None) -> list[Unmappable]:
    """The characters of `row` that `encoding` cannot hold, or that are private-use (外字)."""
    found: list[Unmappable] = []
    for index, cell in enumerate(row):
        column = headers[index] if headers and index < len(headers) else str(index + 1)
        for char in cell:
            point = ord(char)
            if 0xE000 <= point <= 0xF8FF or point >= 0xF0000:
                found.append(Unmappable(row_number, column, f"U+{point:04X}", "is private-use (外字)"))
            elif point > 0x7F and encoding != "utf-8":
                try:
                    char.encode(encoding)
                except UnicodeEncodeError:
                    found.append(Unmappable(row_number, column, f"U+{point:04X}", f"is not in {encoding.upper()}"))
    return found


def control_record(body: bytes) -> bytes:
    """The control line for `body` (the header and data lines as written)."""
    rows = max(body.count(b"\r\n") - 1, 0)
    return CONTROL_PREFIX + f"rows={rows},sha256={hashlib.sha256(body).hexdigest()}\r\n".encode("ascii")


def split_control(data: bytes) -> tuple[bytes, dict[str, str] | None]:
    """(the file without its control line, the control line's fields or None when it has none)."""
    start = data.rfind(b"\r\n", 0, len(data) - 2) + 2 if data.endswith(b"\r\n") else data.rfind(b"\n") + 1
    last = data[start:]
    if not last.startswith(CONTROL_PREFIX):
        return data, None
    fields = dict(part.split("=", 1) for part in last[len(CONTROL_PREFIX):].decode("ascii").strip().split(",")
                  if "=" in part)
    return data[:start], fields


def _get(record: dict[str, Any] | None, path: str) -> Any:
    value: Any = record
    for part in path.split("/"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _put(record: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split("/")
    for part in parts[:-1]:
        record = record.setdefault(part, {})
    record[parts[-1]] = value


def _all_empty(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_all_empty(v) for v in value.values())
    return value is None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _parse(text: str, f: Field) -> Any:
    if text == "":
        return None
    if f.type == "int":
        return int(text)
    if f.type == "boolean":
        if text not in ("0", "1"):
            raise ValueError(text)
        return text == "1"
    if f.type == "date":
        return date.fromisoformat(text)
    if f.type == "datetime":
        return datetime.fromisoformat(text)
    return text


def width_of(f: Field) -> int:
    """The bytes a field takes in a fixed-width record (adapters.transports.fixed_layout)."""
    if f.type == "enum":
        return 2
    if f.type == "boolean":
        return 1
    if f.type == "date":
        return 8
    if f.type == "datetime":
        return 25
    if f.type == "int":
        if "totalDigits" in f.facets:
            return int(f.facets["totalDigits"])
        return len(str(f.facets["maxInclusive"])) if "maxInclusive" in f.facets else 10
    if "maxLength" in f.facets:
        return int(f.facets["maxLength"]) * 2
    bounded = _BOUNDED.fullmatch(str(f.facets.get("pattern", "")))
    if bounded is None:
        raise ValueError(f"field {f.name}: a string without maxLength or a bounded pattern has no fixed width")
    return int(bounded.group(2)) + (1 if bounded.group(1) else 0)


def layout_docs(catalog: Any) -> str:
    """docs/file-layouts.md: every kind's columns, from the catalog."""
    lines = ["# File layouts (CSV and fixed-width)", "",
             "Generated by `python3 -m adapters.transports.csv_layout > docs/file-layouts.md` from each kind's",
             "`schemas/<kind>/<version>/fields.yaml`; do not edit. The format (header, rows, control record,",
             "encodings and what happens to characters an encoding cannot hold) is described in",
             "`adapters/transports/csv_layout.py` and docs/delivery-contract.md.", "",
             "The same columns make the fixed-width record (`.dat`, CP932, CRLF, no header; the file sink's",
             "`layout = \"fixed\"`): *from* and *bytes* below, counted from 1 without the file sink's 64-byte",
             "連携キー (add 64 with it). Strings are left-aligned and padded with half-width spaces, numbers",
             "zero-padded, code lists in their 2-digit numeric codes, dates YYYYMMDD, absent values blank;",
             "the same control record counts every record. See `adapters/transports/fixed_layout.py`.", ""]
    for kind in catalog.kinds():
        ks = catalog.get(kind)
        lines += [f"## {kind} v{ks.version} ({ks.label_ja})", ""]
        try:
            layout = Layout(ks)
        except ConfigError as exc:
            lines += [str(exc), ""]
            continue
        lines += ["| # | header | type | required | from | bytes |", "|---|---|---|---|---|---|"]
        at = 1
        for n, c in enumerate(layout.columns, 1):
            kind_of = f"{c.field.type} ({c.field.codelist})" if c.field.codelist else c.field.type
            width = width_of(c.field)
            lines.append(f"| {n} | `{c.header}` | {kind_of} | {'yes' if c.required else ''} | {at} | {width} |")
            at += width
        lines += ["", f"Fixed-width record: {at - 1} bytes ({at - 1 + 64} with the 連携キー).", ""]
    return "\n".join(lines)


def _main() -> Iterator[str]:
    from bus.catalog import Catalog

    yield layout_docs(Catalog.load())


if __name__ == "__main__":
    print(*_main(), end="")
