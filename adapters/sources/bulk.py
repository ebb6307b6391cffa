"""Bulk files read record by record, never whole: an Avro object container file, the file-linkage
CSV and the fixed-width file of a kind (docs/file-layouts.md).

`open_bulk(path, fmt, catalog, kind)` checks the file as a whole in one streaming pass (its
SHA-256, which is also its identity for a resumed ingest; the number of records; the CSV's
encoding; the control record, when there is one) and returns a `BulkFile`, or raises
`CsvRefused(code, message)` when the file as a whole is wrong (nothing of it submitted).
`BulkFile.items(skip)` then yields each record as an `Item`: the message to submit (as the
inbox always sent it: Avro records as schemaless Avro — as the kind's XML when the file is of a version an Avro
message cannot name, a preview such as jumin.idou v2 — CSV and fixed-width rows as the kind's
XML) or, for a row that does not parse, its issue (row and column only, never a value). The
first `skip` records are passed over (a resumed file). Only one record is held at a time.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import fastavro

from adapters.sources.csv_inbox import CsvRefused, check_header
from adapters.sources.inbox_files import open_regular
from adapters.transports.csv_layout import CONTROL_PREFIX, Layout
from adapters.transports.fixed_layout import FixedLayout
from bus.errors import ConfigError
from bus.validation.issues import Issue

__all__ = ["FORMATS", "BulkFile", "Format", "Item", "format_of", "open_bulk"]

Format = Literal["avro", "csv", "fixed"]
FORMATS: dict[str, Format] = {".avro": "avro", ".csv": "csv", ".dat": "fixed", ".txt": "fixed"}
_CHUNK = 1 << 20
_COLUMN = re.compile(r"column [^\[\]:]*\[([^\]]+)\]")


@dataclass(frozen=True, slots=True)
class Item:
    """One record: its number in the file (Avro: 0-based record; CSV: row, the header is row 1;
    fixed-width: row from 1), and either the message to submit or why it cannot be."""

    index: int
    number: int
    raw: bytes | None
    issue: Issue | None = None


@dataclass
class BulkFile:
    """A checked bulk file: what it is, and its records one by one (`items`)."""

    path: Path
    format: Format
    kind: str
    digest: str
    total: int
    content_type: str
    detail: dict[str, Any] = field(default_factory=dict)
    _items: Callable[[int], Iterator[Item]] | None = None

    def items(self, skip: int = 0) -> Iterator[Item]:
        assert self._items is not None
        return self._items(skip)


def format_of(path: Path) -> Format | None:
    return FORMATS.get(path.suffix.lower())


def open_bulk(path: Path, fmt: Format, catalog: Any, kind: str | None) -> BulkFile:
    """The file at `path` checked as a whole (CsvRefused when it is wrong as a whole)."""
    if fmt == "avro":
        return _open_avro(path, catalog, kind)
    kind = kind or "jumin.idou"
    ks = catalog.get(kind)
    if fmt == "csv":
        return _open_csv(path, ks)
    return _open_fixed(path, ks, catalog)


# -- Avro ------------------------------------------------------------------------------------------

def _open_avro(path: Path, catalog: Any, kind: str | None) -> BulkFile:
    digest = hashlib.sha256()
    try:
        with open_regular(path) as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
            fh.seek(0)
            total = sum(block.num_records for block in fastavro.block_reader(fh))
            fh.seek(0)
            head = fastavro.reader(fh)
            named = kind or _text(head.metadata.get("renkei.kind")) or _kind_of(head.writer_schema, catalog)
            schema = head.writer_schema
    except (OSError, CsvRefused):
        raise
    except Exception as exc:  # any unreadable container: the whole file is rejected
        raise CsvRefused("R212", f"not a readable Avro container file ({type(exc).__name__})") from None
    if named is None:
        raise CsvRefused("R220", "the file does not say its kind: set `kind`, or write renkei.kind metadata")
    content_type = "application/avro"
    if catalog is not None:
        try:
            ks = catalog.get(named, _version_of(schema, named))
        except ConfigError as exc:
            raise CsvRefused("R220", str(exc)) from None
        reader_schema: Any = ks.avro_schema
        encode: Callable[[Any], bytes] = ks.to_avro
        if ks is not catalog.get(named):  # a version an Avro message cannot name (a preview: jumin.idou v2)
            encode, content_type = ks.to_xml, "application/xml"  # its XML namespace names it
    else:
        reader_schema = None
        encode = lambda record: _schemaless(schema, record)  # noqa: E731

    def items(skip: int) -> Iterator[Item]:
        with open_regular(path) as fh:
            for index, record in enumerate(fastavro.reader(fh, reader_schema=reader_schema)):
                if index >= skip:
                    yield Item(index, index, encode(record))

    return BulkFile(path, "avro", named, digest.hexdigest(), total, content_type, {"records": total}, items)


def _kind_of(schema: Any, catalog: Any) -> str | None:
    name = schema.get("name", "") if isinstance(schema, dict) else ""
    parts = name.split(".")
    if len(parts) < 4 or parts[0] != "renkei" or not parts[-2].startswith("v"):
        return None
    flat = parts[1]
    if catalog is not None:
        for kind in catalog.kinds():
            if kind.replace(".", "_") == flat:
                return str(kind)
    return str(flat.replace("_", ".", 1))


def _version_of(schema: Any, kind: str) -> int | None:
    """The version the writer schema's name says (``renkei.jumin_idou.v2.ResidentChange`` → 2) when
    it is a schema of `kind`; None (the kind's default version) otherwise."""
    name = schema.get("name", "") if isinstance(schema, dict) else ""
    parts = name.split(".")
    if len(parts) < 4 or parts[0] != "renkei" or parts[1] != kind.replace(".", "_"):
        return None
    digits = parts[-2][1:]
    return int(digits) if parts[-2].startswith("v") and digits.isdigit() else None


def _schemaless(schema: Any, record: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


# -- the file-linkage formats ------------------------------------------------------------------------

@dataclass
class _Scan:
    """One pass over a CSV or fixed-width file: where its body ends (before the control record),
    its SHA-256, its CRLF count, whether the body decodes strictly in each encoding tried."""

    size: int
    body_end: int
    control: dict[str, str] | None
    digest: str
    body_digest: str
    lines: int  # CRLF-terminated lines (what a control record counts)
    decodes: dict[str, bool]
    newlines: int = 0  # LF, with or without CR
    open_end: bool = False  # the body's last line has no line end

    def rows(self) -> int:
        """Lines of the body, however they end (the number of records a progress shows)."""
        return self.newlines + (1 if self.open_end else 0)


def _scan(path: Path, encodings: tuple[str, ...]) -> _Scan:
    with open_regular(path) as fh:
        size = fh.seek(0, io.SEEK_END)
        body_end, control = _control_of(fh, size)
        fh.seek(0)
        whole, body = hashlib.sha256(), hashlib.sha256()
        decoders = {e: codecs.getincrementaldecoder(e)("strict") for e in encodings}
        decodes = dict.fromkeys(encodings, True)
        lines, newlines, at, last = 0, 0, 0, b""
        while chunk := fh.read(_CHUNK):
            whole.update(chunk)
            part = chunk[: max(0, body_end - at)]
            at += len(chunk)
            if not part:
                continue
            body.update(part)
            lines += (last + part).count(b"\r\n") - last.count(b"\r\n")
            newlines += part.count(b"\n")
            last = part[-1:]
            for e, decoder in decoders.items():
                if decodes[e]:
                    try:
                        decoder.decode(part)
                    except UnicodeDecodeError:
                        decodes[e] = False
        for e, decoder in decoders.items():
            if decodes[e]:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    decodes[e] = False
    return _Scan(size, body_end, control, whole.hexdigest(), body.hexdigest(), lines, decodes, newlines,
                 open_end=last not in (b"", b"\n"))


def _control_of(fh: BinaryIO, size: int) -> tuple[int, dict[str, str] | None]:
    """(where the body ends, the control record's fields) — the control record is the last line."""
    tail_at = max(0, size - 4096)
    fh.seek(tail_at)
    tail = fh.read()
    end = len(tail) - 2 if tail.endswith(b"\r\n") else len(tail)
    start = tail.rfind(b"\n", 0, end) + 1
    if start == 0 and tail_at > 0:
        return size, None  # a last line longer than 4 KiB is no control record
    last = tail[start:]
    if not last.startswith(CONTROL_PREFIX):
        return size, None
    fields = dict(part.split("=", 1) for part in last[len(CONTROL_PREFIX):].decode("ascii", "replace").strip()
                  .split(",") if "=" in part)
    return tail_at + start, fields


def _check_control(scan: _Scan, rows: int) -> None:
    if scan.control is None:
        return
    if scan.control.get("sha256") != scan.body_digest or scan.control.get("rows") != str(rows):
        raise CsvRefused("R214", "the file disagrees with its control record (rows or SHA-256): truncated or altered")


class _Body(io.RawIOBase):
    """The file up to `end` (without its control record)."""

    def __init__(self, fh: BinaryIO, end: int) -> None:
        self._fh, self._left = fh, end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._fh.read(min(len(buffer), self._left))
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def _open_csv(path: Path, ks: Any) -> BulkFile:
    layout = Layout(ks)
    scan = _scan(path, ("utf-8-sig", "cp932"))
    _check_control(scan, max(scan.lines - 1, 0))
    encoding = next((e for e in ("utf-8-sig", "cp932") if scan.decodes[e]), None)
    if encoding is None:
        raise CsvRefused("R207", "the file is neither UTF-8 nor CP932 (Shift_JIS)")

    def rows() -> Generator[list[str]]:
        with open_regular(path) as fh:
            text = io.TextIOWrapper(io.BufferedReader(_Body(fh, scan.body_end)), encoding=encoding, newline="")
            yield from csv.reader(text)

    reader = rows()
    header = next(reader, None)
    reader.close()
    if header is None:
        raise CsvRefused("R213", "the file is empty: expected a header row")
    keyed = check_header(header, layout)  # a file the file sink wrote: its 連携キー first

    def parse_row(row: list[str], number: int) -> dict[str, Any]:
        return layout.record(row, where=f"row {number}: ")

    def items(skip: int) -> Iterator[Item]:
        index = 0
        for number, row in enumerate(rows(), 1):
            if number == 1 or not row:
                continue
            if index >= skip:
                yield _item(index, number, row[1:] if keyed else row, parse_row, ks)
            index += 1

    rows_in = max(scan.rows() - 1, 0)  # the header is not a record (a quoted line end counts: an upper bound)
    detail = {"encoding": "utf-8" if encoding == "utf-8-sig" else encoding, "rows": rows_in}
    return BulkFile(path, "csv", ks.kind, scan.digest, rows_in, "application/xml", detail, items)


def _open_fixed(path: Path, ks: Any, catalog: Any) -> BulkFile:
    plain, keyed = FixedLayout(ks, catalog.codelists), FixedLayout(ks, catalog.codelists, keyed=True)
    scan = _scan(path, ())
    _check_control(scan, scan.lines)

    def records() -> Iterator[bytes]:
        with open_regular(path) as fh:
            body, rest = _Body(fh, scan.body_end), b""
            while chunk := body.read(_CHUNK):
                lines = (rest + chunk).split(b"\r\n")
                rest = lines.pop()
                yield from lines
            if rest:
                yield rest

    first = next((r for r in records() if r), None)
    if first is None:
        raise CsvRefused("R213", "the file holds no record")
    layout = plain if len(first) == plain.length else keyed if len(first) == keyed.length else None
    if layout is None:
        raise CsvRefused("R213", f"row 1: {len(first)} bytes, a record of {plain.kind} has {plain.length} "
                                 f"({keyed.length} with the 連携キー; docs/file-layouts.md)")
    found = layout

    def parse_line(line: bytes, number: int) -> dict[str, Any]:
        return found.decode(line, number)[1]

    def items(skip: int) -> Iterator[Item]:
        index = 0
        for line in records():
            if not line:
                continue
            if index >= skip:
                number = index + 1
                yield _item(index, number, line, parse_line, ks)
            index += 1

    detail = {"encoding": "cp932", "layout": "fixed", "rows": scan.rows()}
    return BulkFile(path, "fixed", ks.kind, scan.digest, scan.rows(), "application/xml", detail, items)


def _item(index: int, number: int, row: Any, parse: Callable[[Any, int], dict[str, Any]], ks: Any) -> Item:
    """The row as the kind's XML, or its R213 (the row and column, never a value)."""
    try:
        record = parse(row, number)
    except ValueError as exc:
        column = _COLUMN.search(str(exc))  # "column 異動日[change/effective_date]: not a date": its field
        return Item(index, number, None, Issue("R213", str(exc), "/" + column.group(1) if column else "/"))
    try:
        return Item(index, number, ks.to_xml(record))
    except Exception:  # a codec error may quote the value: say where only
        return Item(index, number, None, Issue("R213", f"row {number}: does not fit {ks.kind}", "/"))
