"""CSV files in the inbox: each data row a change, submitted one by one as the kind's XML.

The file is in the layout of adapters.transports.csv_layout (docs/file-layouts.md), in
UTF-8 (a BOM is allowed) or CP932/Shift_JIS: UTF-8 is tried first, strictly, then CP932,
strictly; bytes that are neither reject the whole file (R207), nothing is guessed or
replaced. With a control record (``#renkei-control,rows=N,sha256=…``) the file is checked
against it first: another count or checksum means a truncated or altered file, rejected
whole (R214). A header that is not the kind's layout, or a row that does not parse, is
R213 (the row's number and column, never its values). Rows then go to the bus like any
message: a private-use 外字 in a row is the validator's R440, with its code point.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from adapters.transports.csv_layout import Layout, split_control
from bus.ports import Submission
from bus.validation.issues import Issue

__all__ = ["CsvRefused", "read_csv", "refused_whole", "submit_rows", "take_csv"]

Submit = Callable[[bytes, str, str | None], Awaitable[Submission]]
_MAX_DETAILED = 1000
Row = Any  # a CSV row (its cells) or a fixed-width record (bytes)


class CsvRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def read_csv(data: bytes, layout: Layout) -> tuple[str, list[list[str]]]:
    """(the encoding, the data rows) of a CSV file; CsvRefused when the file as a whole is wrong."""
    body, control = split_control(data)
    if control is not None:
        counted, digest = control.get("rows"), control.get("sha256")
        if digest != hashlib.sha256(body).hexdigest() or counted != str(max(body.count(b"\r\n") - 1, 0)):
            raise CsvRefused("R214", "the file disagrees with its control record (rows or SHA-256): "
                                     "truncated or altered")
    for encoding in ("utf-8-sig", "cp932"):
        try:
            text = body.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise CsvRefused("R207", "the file is neither UTF-8 nor CP932 (Shift_JIS)")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise CsvRefused("R213", "the file is empty: expected a header row")
    header, data_rows = rows[0], rows[1:]
    if header and header[0] == "連携キー[key]":  # a file the file sink wrote
        header, data_rows = header[1:], [r[1:] for r in data_rows]
    if header != layout.headers():
        wrong = next((i for i, (a, b) in enumerate(zip(header, layout.headers(), strict=False)) if a != b),
                     min(len(header), len(layout.headers())))
        raise CsvRefused("R213", f"the header is not the layout of {layout.kind} (docs/file-layouts.md): "
                                 f"column {wrong + 1} differs")
    return ("utf-8" if encoding == "utf-8-sig" else encoding), [r for r in data_rows if r]


async def take_csv(path: Path, submit: Submit, catalog: Any, kind: str | None,
                   max_records: int) -> tuple[str, dict[str, int], dict[str, Any]]:
    """Submit every row of the CSV file at `path`: (status, counts, detail for the result file)."""
    kind = kind or "jumin.idou"
    ks = catalog.get(kind)
    layout = Layout(ks)
    try:
        encoding, rows = read_csv(await asyncio.to_thread(path.read_bytes), layout)
    except CsvRefused as exc:
        return refused_whole(exc.code, str(exc))
    if len(rows) > max_records:
        return refused_whole("R100", f"the file holds {len(rows)} rows, more than the cap of {max_records}")
    rejected: list[dict[str, Any]] = []
    counts = await submit_rows(enumerate(rows, 2), lambda row, number: layout.record(row, where=f"row {number}: "),
                               ks, submit, rejected)  # row 1 is the header
    status = "rejected" if counts["rejected"] else "processed"
    return status, counts, {"kind": kind, "encoding": encoding, "rows": len(rows), "rejected_rows": rejected}


def refused_whole(code: str, message: str) -> tuple[str, dict[str, int], dict[str, Any]]:
    """The answer for a file rejected as a whole: (status, counts, detail for the result file)."""
    return "rejected", {"accepted": 0, "duplicate": 0, "rejected": 1}, {"issues": [Issue(code, message, "/").to_dict()]}


async def submit_rows(rows: Iterable[tuple[int, Row]], parse: Callable[[Row, int], dict[str, Any]], ks: Any,
                      submit: Submit, rejected: list[dict[str, Any]]) -> dict[str, int]:
    """Submit each (row number, row) as `ks`'s XML, `parse`d (ValueError naming row and column only):
    the counts; the first rejected rows' issues are appended to `rejected`."""
    kind = ks.kind
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for number, row in rows:
        answer: Submission
        try:
            record = parse(row, number)  # its errors name row and column only
        except ValueError as exc:
            answer = Submission("rejected", kind=kind, issues=(Issue("R213", str(exc), "/"),))
        else:
            try:
                raw = ks.to_xml(record)
            except Exception:  # a codec error may quote the value: say where only
                answer = Submission("rejected", kind=kind,
                                    issues=(Issue("R213", f"row {number}: does not fit {kind}", "/"),))
            else:
                answer = await submit(raw, "application/xml", kind)
        counts[answer.status] += 1
        if answer.status == "rejected" and len(rejected) < _MAX_DETAILED:
            rejected.append({"row": number, "issues": answer.to_dict()["issues"]})
    return counts

