"""The fixed-width record layout of a kind, in CP932, where the national layouts use fixed-width files.

The columns are the CSV layout's (adapters.transports.csv_layout.Layout: the kind's leaves in
schema order, from ``schemas/<kind>/<v>/fields.yaml``), so the layout is defined once, beside
the XSD and Avro schema; each column gets a width in bytes from the field's spec:

    string      maxLength × 2 (a full-width CP932 character is two bytes); a pattern-bounded
                code (``[0-9]{1,15}``) its longest match, one byte a character
    enum        2: the numeric code of schemas/codelists.yaml (``TENNYU`` → ``11``)
    int         totalDigits, else the digits of maxInclusive, else 10; right-aligned, zero-padded
    date        8 (YYYYMMDD);  datetime 25 (ISO 8601 with its offset);  boolean 1 (1/0)

A file is CRLF-terminated records of exactly the layout's length (the file sink puts a 64-byte
``連携キー`` first), no header, then the control record ``#renkei-control,rows=<N>,sha256=<hex>``
of csv_layout. Strings are left-aligned and padded with half-width spaces; an absent value is all
spaces. Characters CP932 cannot hold and private-use characters (外字) are reported with row,
column and code point (csv_layout.check_characters), never replaced; a value longer than its
column is reported with row and column, never cut. docs/file-layouts.md lists the widths
(``python -m adapters.transports.csv_layout`` regenerates it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from adapters.transports.csv_layout import (
    Column,
    Layout,
    Unmappable,
    UnmappableError,
    check_characters,
    fold,
    width_of,
)
from bus.catalog.codelists import CodeLists

__all__ = ["ENCODING", "KEY_WIDTH", "FixedLayout", "fixed_control", "records_of", "width_of"]

ENCODING = "cp932"
KEY_WIDTH = 64  # the file sink's 連携キー (message id + destination), left-aligned ASCII


class FixedLayout:
    """The fixed-width records of one kind: its columns, each with an offset and a width in bytes."""

    def __init__(self, kind_schema: Any, codelists: CodeLists, *, keyed: bool = False) -> None:
        self.layout = Layout(kind_schema)
        self.kind = self.layout.kind
        self.version = self.layout.version
        self.codelists = codelists
        self.keyed = keyed  # the file sink's records start with the 64-byte 連携キー
        self.columns: tuple[Column, ...] = self.layout.columns
        self.widths = tuple(width_of(c.field) for c in self.columns)
        self.length = (KEY_WIDTH if keyed else 0) + sum(self.widths)

    def offsets(self) -> list[tuple[Column, int, int]]:
        """(column, 1-based byte offset, width) for the docs."""
        at, found = 1 + (KEY_WIDTH if self.keyed else 0), []
        for column, width in zip(self.columns, self.widths, strict=True):
            found.append((column, at, width))
            at += width
        return found

    def encode(self, records: Iterable[tuple[str, Mapping[str, Any]]], *, first_row: int = 1) -> bytes:
        """CRLF-terminated records of (key, record); UnmappableError naming every character CP932
        cannot hold and every value longer than its column (row, column, never the value)."""
        lines: list[bytes] = []
        found: list[Unmappable] = []
        headers = [c.header for c in self.columns]
        for n, (key, record) in enumerate(records, first_row):
            cells = fold([self._text(c, text) for c, text in zip(self.columns, self.layout.row(dict(record)),
                                                                  strict=True)], ENCODING)
            problems = check_characters(cells, ENCODING, n, headers)
            found += problems
            if problems:
                continue
            if self.keyed and len(key) > KEY_WIDTH:
                found.append(Unmappable(n, "連携キー", f"{len(key)} bytes", f"is longer than its {KEY_WIDTH}"))
                continue
            parts = [key.encode("ascii").ljust(KEY_WIDTH)] if self.keyed else []
            for column, width, cell in zip(self.columns, self.widths, cells, strict=True):
                data = cell.encode(ENCODING)
                if len(data) > width:
                    found.append(Unmappable(n, column.header, f"{len(data)} bytes", f"is longer than its {width}"))
                    continue
                numeric = column.field.type == "int" and cell
                parts.append(data.rjust(width, b"0") if numeric else data.ljust(width))
            lines.append(b"".join(parts) + b"\r\n")
        if found:
            raise UnmappableError(found)
        return b"".join(lines)

    def decode(self, line: bytes, row: int) -> tuple[str, dict[str, Any]]:
        """(the key, or "" unkeyed; the record) of one record without its CRLF; ValueError naming
        the row and column (never the value) when it is not this layout."""
        if len(line) != self.length:
            raise ValueError(f"row {row}: {len(line)} bytes, a record of {self.kind} has {self.length}")
        at = KEY_WIDTH if self.keyed else 0
        key = line[:at].decode("ascii", errors="replace").rstrip(" ")
        cells: list[str] = []
        for column, width in zip(self.columns, self.widths, strict=True):
            try:
                text = line[at:at + width].decode(ENCODING).rstrip(" ")
            except UnicodeDecodeError:
                raise ValueError(f"row {row}: column {column.header}: not CP932") from None
            at += width
            cells.append(self._symbol(column, text, row))
        return key, self.layout.record(cells, where=f"row {row}: ")

    def _text(self, column: Column, cell: str) -> str:
        f = column.field
        if not cell:
            return cell
        if f.type == "enum" and f.codelist is not None:
            try:
                return self.codelists.numeric(f.codelist, cell)
            except KeyError:
                return cell  # longer than 2 or not a code: reported by the width check
        if f.type == "date":
            return date.fromisoformat(cell).strftime("%Y%m%d")
        return cell

    def _symbol(self, column: Column, text: str, row: int) -> str:
        f = column.field
        if not text:
            return text
        if f.type == "enum" and f.codelist is not None:
            try:
                return self.codelists.from_numeric(f.codelist, text)
            except KeyError:
                raise ValueError(f"row {row}: column {column.header}: not a {f.codelist} code") from None
        if f.type == "date":
            try:
                return datetime.strptime(text, "%Y%m%d").date().isoformat()
            except ValueError:
                raise ValueError(f"row {row}: column {column.header}: not a date (YYYYMMDD)") from None
        if f.type == "int":
            return text.lstrip("0") or "0"
        return text


def fixed_control(body: bytes) -> bytes:
    """The control line of a fixed-width file: every record counted (there is no header)."""
    rows = body.count(b"\r\n")
    return f"#renkei-control,rows={rows},sha256={hashlib.sha256(body).hexdigest()}\r\n".encode("ascii")


def records_of(body: bytes) -> Sequence[bytes]:
    """The records of a fixed-width file body (without its control record), CRLF removed."""
    return [line for line in body.split(b"\r\n") if line]
