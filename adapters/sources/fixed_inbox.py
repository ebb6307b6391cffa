"""Fixed-width files in the inbox (``*.dat``): each record a change, submitted one by one as the kind's XML.

The records are in the kind's fixed-width layout (adapters.transports.fixed_layout,
docs/file-layouts.md), CP932, CRLF-terminated; a file the file sink wrote (each record led by
its 64-byte 連携キー) is read too, told apart by its record length. With a control record
(``#renkei-control,rows=N,sha256=…``) the file is checked against it first: another count or
checksum is a truncated or altered file, rejected whole (R214). A record of another length, a
field that is not CP932 or does not parse is R213 (its row and column, never its value);
nothing is guessed or replaced. A private-use 外字 goes on to the validator (R440, its code point).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from adapters.sources.csv_inbox import CsvRefused, Submit, refused_whole, submit_rows
from adapters.transports.csv_layout import split_control
from adapters.transports.fixed_layout import FixedLayout, records_of

__all__ = ["read_fixed", "take_fixed"]


def read_fixed(data: bytes, layout: FixedLayout, keyed: FixedLayout) -> tuple[FixedLayout, list[bytes]]:
    """(the layout the records are in, the records) of a fixed-width file; CsvRefused when the file
    as a whole is wrong. `keyed` is the same layout with the file sink's 連携キー in front."""
    body, control = split_control(data)
    if control is not None:
        counted, digest = control.get("rows"), control.get("sha256")
        if digest != hashlib.sha256(body).hexdigest() or counted != str(body.count(b"\r\n")):
            raise CsvRefused("R214", "the file disagrees with its control record (rows or SHA-256): "
                                     "truncated or altered")
    records = list(records_of(body))
    if not records:
        raise CsvRefused("R213", "the file holds no record")
    found = layout if len(records[0]) == layout.length else keyed if len(records[0]) == keyed.length else None
    if found is None:
        raise CsvRefused("R213", f"row 1: {len(records[0])} bytes, a record of {layout.kind} has {layout.length} "
                                 f"({keyed.length} with the 連携キー; docs/file-layouts.md)")
    return found, records


async def take_fixed(path: Path, submit: Submit, catalog: Any, kind: str | None,
                     max_records: int) -> tuple[str, dict[str, int], dict[str, Any]]:
    """Submit every record of the fixed-width file at `path`: (status, counts, detail for the result file)."""
    kind = kind or "jumin.idou"
    ks = catalog.get(kind)
    try:
        layout, records = read_fixed(await asyncio.to_thread(path.read_bytes), FixedLayout(ks, catalog.codelists),
                                     FixedLayout(ks, catalog.codelists, keyed=True))
    except CsvRefused as exc:
        return refused_whole(exc.code, str(exc))
    if len(records) > max_records:
        return refused_whole("R100", f"the file holds {len(records)} records, more than the cap of {max_records}")
    rejected: list[dict[str, Any]] = []
    counts = await submit_rows(enumerate(records, 1), lambda line, number: layout.decode(line, number)[1],
                               ks, submit, rejected)
    status = "rejected" if counts["rejected"] else "processed"
    return status, counts, {"kind": kind, "encoding": "cp932", "layout": "fixed", "rows": len(records),
                            "rejected_rows": rejected}
