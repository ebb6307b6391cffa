"""A file of changes through the HTTP intake (`POST /v1/files`, `Content-Type: text/csv`): the
file-linkage CSV of a kind (docs/file-layouts.md, UTF-8 or CP932, with or without its control
record), read as the inbox reads it (adapters.sources.csv_inbox) and answered as a whole:

    200 {"status": "processed", "counts": {...}, ...}           every row accepted or a duplicate
    422 {"status": "rejected",  "counts": {...}, "rejected_rows": [...]}  some rows rejected (each
        with its row number and issues; the other rows went in), or the file as a whole (R207,
        R213, R214) with nothing submitted
    403 a row of another municipality (the rows before it went in; audited)
    503 the bus cannot take messages now: send the file again (rows already taken answer
        "duplicate")
"""

from __future__ import annotations

from typing import Any

from adapters.sources.csv_inbox import CsvRefused, read_csv, submit_rows
from adapters.transports.csv_layout import Layout
from bus.errors import BrokerError, ConfigError, SourceForbidden
from bus.ports import Intake, Submission
from bus.validation.issues import Issue

__all__ = ["take_file"]


async def take_file(raw: bytes, intake: Intake, source: str, catalog: Any, kind: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, answer body) for the CSV file `raw` of `kind` from `source`."""
    try:
        ks = catalog.get(kind)
    except ConfigError:
        return 422, _whole("R220", f"unknown kind {kind!r}")
    layout = Layout(ks)
    try:
        encoding, rows = read_csv(raw, layout)
    except CsvRefused as refused:
        return 422, _whole(refused.code, str(refused))

    async def submit(body: bytes, content_type: str, row_kind: str | None) -> Submission:
        return await intake.submit(body, content_type=content_type, source=source, kind=row_kind)

    rejected: list[dict[str, Any]] = []
    try:
        counts = await submit_rows(enumerate(rows, 2), lambda row, n: layout.record(row, where=f"row {n}: "),
                                   ks, submit, rejected)  # row 1 is the header
    except SourceForbidden as refusal:  # audited by the intake
        return 403, {"status": "forbidden", "issues": [Issue(refusal.code, str(refusal), "/").to_dict()]}
    except BrokerError:
        return 503, {"status": "unavailable", "reason": "the bus cannot accept messages now; send the file again "
                                                        "(rows already taken answer duplicate)"}
    status = "rejected" if counts["rejected"] else "processed"
    body = {"status": status, "kind": kind, "encoding": encoding, "rows": len(rows), "counts": counts,
            "rejected_rows": rejected}
    return (422 if counts["rejected"] else 200), body


def _whole(code: str, message: str) -> dict[str, Any]:
    return {"status": "rejected", "counts": {"accepted": 0, "duplicate": 0, "rejected": 0},
            "issues": [Issue(code, message, "/").to_dict()]}


