"""CSV files of changes: each data row a change, submitted as the kind's XML. The HTTP intake's
`POST /v1/files` reads a posted file whole with `read_csv` and `submit_rows`; the inbox and
`renkei ingest` stream files of any size (adapters.sources.bulk) with the same checks.

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

import csv
import hashlib
import io
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from adapters.transports.csv_layout import Layout, split_control
from bus.ports import Submission
from bus.validation.issues import Issue

__all__ = ["CsvRefused", "check_header", "read_csv", "refused_whole", "submit_rows"]

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
    if check_header(header, layout):  # a file the file sink wrote: its 連携キー first
        data_rows = [r[1:] for r in data_rows]
    return ("utf-8" if encoding == "utf-8-sig" else encoding), [r for r in data_rows if r]


def check_header(header: list[str], layout: Layout) -> bool:
    """Whether the rows are keyed (a file the file sink wrote: 連携キー first); CsvRefused (R213,
    naming the first column that differs) when the header is not the kind's layout."""
    keyed = bool(header) and header[0] == "連携キー[key]"
    if keyed:
        header = header[1:]
    if header != layout.headers():
        wrong = next((i for i, (a, b) in enumerate(zip(header, layout.headers(), strict=False)) if a != b),
                     min(len(header), len(layout.headers())))
        raise CsvRefused("R213", f"the header is not the layout of {layout.kind} (docs/file-layouts.md): "
                                 f"column {wrong + 1} differs")
    return keyed


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

