"""ぴったりサービス batches: the applications a municipality downloads from マイナポータル as files.

    status, counts, detail = await take_pittari(path, submit, catalog)   # a .zip or a directory

The batch (the format renkei assumes; docs/domain.md section 6 says which parts are assumed):

    <batch>.zip, or a directory
      <any folders, e.g. one per 手続>/
        <application folder>/         one per application: the folder holding its form
          shinsei.xml                 the form as a portal.shinsei XML, or
          shinsei.csv                 the form as rows of 項目,値 (keys below), UTF-8 or CP932
          <any other files>           its attachments (in the folder or below it)

Each application becomes one `pittari.shinsei` message (the form plus `attachments`: name,
media type from the extension, size, SHA-256; the files stay in the archive), submitted as
any source's message: the bus validates it and routes it to the system of its 手続
(routes/pittari.yaml). Its identity is the 申請ID, so the same batch taken again is answered
"duplicate" application by application.

Refused whole, before anything is submitted (R231, naming the entry): an absolute name or a
`..` component, a symbolic link (a zip entry with a link's mode; a link, FIFO, device or hard
link in a directory), an encrypted entry, a name given twice, more than `max_entries`
entries, more than `max_depth` folders deep, an entry over `max_file_size` or a form over
`max_form_size` (counted while reading, never trusted from the header), more than
`max_total` bytes in all, or an entry that expands more than `max_ratio` times (a zip bomb).
Entry names are quoted only when they are plain ASCII (a file name may hold a person's name):
otherwise by number.

Per application (the others go on): a form that does not validate (its issues, with the
form file), a CSV row that does not parse (its row and key, never the value), an attachment
of a type not taken (PDF, JPEG, PNG, GIF, HEIC, TIFF, XML, CSV, text), a file outside every
application folder.

CSV form keys: application_id, municipality_code, procedure_code, procedure_name,
submitted_at (ISO 8601 with offset), applicant.family_name, applicant.given_name,
applicant.family_name_kana, applicant.given_name_kana, applicant.birth_date,
applicant.personal_number, applicant.address.<postal_code|prefecture|city|town|banchi|
building>; every other key is a form item, in file order. The first row is the header 項目,値.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
import re
import stat
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from adapters.sources.inbox_files import not_regular, open_regular
from bus.errors import ValidationFailed
from bus.ports import Submission
from bus.validation.issues import Issue

__all__ = ["FORM_NAMES", "MEDIA_TYPES", "BatchLimits", "BatchRefused", "read_batch", "take_pittari"]

KIND = "pittari.shinsei"
FORM_KIND = "portal.shinsei"
FORM_NAMES = ("shinsei.xml", "shinsei.csv")
MEDIA_TYPES = {
    ".pdf": "application/pdf", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
    ".gif": "image/gif", ".heic": "image/heic", ".tif": "image/tiff", ".tiff": "image/tiff",
    ".xml": "application/xml", ".csv": "text/csv", ".txt": "text/plain",
}
Submit = Callable[[bytes, str, str | None], Awaitable[Submission]]
_SAFE_NAME = re.compile(r"[A-Za-z0-9._/\-]{1,200}")
_HEADER = ["項目", "値"]


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_entries: int = 10_000
    max_depth: int = 6
    max_file_size: int = 20 * 1024 * 1024
    max_form_size: int = 1024 * 1024
    max_total: int = 2 * 1024 * 1024 * 1024
    max_ratio: int = 100


class BatchRefused(Exception):
    """The batch as a whole is refused (R231): nothing of it was submitted."""


@dataclass(frozen=True, slots=True)
class _File:
    path: PurePosixPath  # inside the batch
    number: int  # 1-based, in the order read
    size: int
    sha256: str
    data: bytes = b""  # kept for a form only: an attachment's bytes are not held


def _file(path: PurePosixPath, number: int, data: bytes) -> _File:
    form = path.name in FORM_NAMES
    return _File(path, number, len(data), hashlib.sha256(data).hexdigest(), data if form else b"")


def _where(f: _File | PurePosixPath, number: int | None = None) -> str:
    """How a message names an entry: its name when plain ASCII, else its number only."""
    path, n = (f.path, f.number) if isinstance(f, _File) else (f, number)
    text = str(path)
    return f"entry {n} ({text})" if _SAFE_NAME.fullmatch(text) else f"entry {n} (name withheld: not plain ASCII)"


def _checked_path(name: str, number: int, limits: BatchLimits) -> PurePosixPath:
    if "\\" in name or "\x00" in name or name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise BatchRefused(f"entry {number}: an absolute or Windows-style name")
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise BatchRefused(f"entry {number}: a '..' component (path traversal)")
    if len(path.parts) > limits.max_depth:
        raise BatchRefused(f"{_where(path, number)}: more than {limits.max_depth} folders deep")
    return path


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The entry's name: UTF-8 when flagged, else CP932 (Japanese Windows archivers write it so)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("cp932")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _read_bounded(stream: io.BufferedIOBase | Any, limit: int, what: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise BatchRefused(f"{what}: larger than {limit} bytes")
    return bytes(data)


def _zip_files(path: Path, limits: BatchLimits) -> Iterator[_File]:
    total = 0
    with open_regular(path) as fh, zipfile.ZipFile(fh) as archive:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:
            raise BatchRefused(f"the batch holds {len(infos)} entries, more than {limits.max_entries}")
        seen: set[PurePosixPath] = set()
        for number, info in enumerate(infos, 1):
            entry = _checked_path(_zip_name(info), number, limits)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise BatchRefused(f"{_where(entry, number)}: a symbolic link")
            if info.flag_bits & 0x1:
                raise BatchRefused(f"{_where(entry, number)}: encrypted")
            if info.is_dir():
                continue
            if entry in seen:
                raise BatchRefused(f"{_where(entry, number)}: the same name twice")
            seen.add(entry)
            limit = limits.max_form_size if entry.name in FORM_NAMES else limits.max_file_size
            with archive.open(info) as member:
                data = _read_bounded(member, limit, _where(entry, number))
            if len(data) > 1024 * 1024 and len(data) > limits.max_ratio * max(info.compress_size, 1):
                raise BatchRefused(f"{_where(entry, number)}: expands more than {limits.max_ratio} times "
                                   "(a zip bomb)")
            total += len(data)
            if total > limits.max_total:
                raise BatchRefused(f"the batch expands to more than {limits.max_total} bytes")
            yield _file(entry, number, data)


def _directory_files(root: Path, limits: BatchLimits) -> Iterator[_File]:
    total = number = 0
    pending = [root]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for item in entries:
            number += 1
            if number > limits.max_entries:
                raise BatchRefused(f"the batch holds more than {limits.max_entries} entries")
            path = Path(item.path)
            relative = _checked_path(path.relative_to(root).as_posix(), number, limits)
            if item.is_dir(follow_symlinks=False):
                pending.append(path)
                continue
            refusal = not_regular(path)
            if refusal is not None:
                raise BatchRefused(f"{_where(relative, number)}: {refusal}")
            limit = limits.max_form_size if path.name in FORM_NAMES else limits.max_file_size
            with open_regular(path) as fh:
                data = _read_bounded(fh, limit, _where(relative, number))
            total += len(data)
            if total > limits.max_total:
                raise BatchRefused(f"the batch holds more than {limits.max_total} bytes")
            yield _file(relative, number, data)


def read_batch(path: Path, limits: BatchLimits | None = None) -> list[_File]:
    """Every file of the batch at `path` (a .zip or a directory), checked; BatchRefused if not.
    One entry at a time is held (at most `max_file_size`); of an attachment only its size and
    SHA-256 are kept."""
    limits = limits or BatchLimits()
    if path.is_dir() and not path.is_symlink():
        return list(_directory_files(path, limits))
    try:
        return list(_zip_files(path, limits))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise BatchRefused(f"not a readable zip archive ({type(exc).__name__})") from None


@dataclass(slots=True)
class _Application:
    folder: PurePosixPath
    form: _File
    attachments: list[_File]


def _applications(files: list[_File]) -> tuple[list[_Application], list[_File]]:
    """The applications (a folder with a form, its other files below it) and the stray files."""
    forms = {f.path.parent: f for f in files if f.path.name in FORM_NAMES}
    apps = {folder: _Application(folder, form, []) for folder, form in forms.items()}
    stray: list[_File] = []
    for f in files:
        if f.path.name in FORM_NAMES and forms.get(f.path.parent) is f:
            continue
        owner = next((p for p in f.path.parents if p in apps), None)  # the nearest application folder
        (apps[owner].attachments if owner is not None else stray).append(f)
    return sorted(apps.values(), key=lambda a: a.form.number), stray


def _attachment(f: _File) -> dict[str, Any]:
    suffix = f.path.suffix.lower()
    if suffix not in MEDIA_TYPES:
        raise ValueError(f"{_where(f)}: an attachment of a type not taken ({suffix or 'no extension'}; "
                         f"taken: {', '.join(sorted(MEDIA_TYPES))})")
    return {"file_name": f.path.name, "media_type": MEDIA_TYPES[suffix], "size": f.size, "sha256": f.sha256}


_TOP = ("application_id", "municipality_code", "procedure_code", "procedure_name", "submitted_at")
_APPLICANT = ("family_name", "given_name", "family_name_kana", "given_name_kana", "birth_date", "personal_number")
_ADDRESS = ("postal_code", "prefecture", "city", "town", "banchi", "building")


def _csv_form(f: _File) -> dict[str, Any]:
    """A portal.shinsei record from a 項目,値 CSV form (ValueError naming the row and key only)."""
    for encoding in ("utf-8-sig", "cp932"):
        try:
            text = f.data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ValueError(f"{_where(f)}: neither UTF-8 nor CP932 (Shift_JIS)")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or rows[0] != _HEADER:
        raise ValueError(f"{_where(f)}: the first row must be the header 項目,値")
    record: dict[str, Any] = {"applicant": {"address": {}}, "items": []}
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) != 2:
            raise ValueError(f"{_where(f)}: row {number} has {len(row)} columns, expected 2 (項目,値)")
        key, value = row
        try:
            if key in _TOP:
                record[key] = datetime.fromisoformat(value) if key == "submitted_at" else value
            elif key.startswith("applicant.address.") and key.rsplit(".", 1)[1] in _ADDRESS:
                record["applicant"]["address"][key.rsplit(".", 1)[1]] = value or None
            elif key.startswith("applicant.") and key.split(".", 1)[1] in _APPLICANT:
                name = key.split(".", 1)[1]
                record["applicant"][name] = date.fromisoformat(value) if name == "birth_date" else (value or None)
            else:
                record["items"].append({"key": key, "value": value})
        except ValueError:
            raise ValueError(f"{_where(f)}: row {number} ({key if _SAFE_NAME.fullmatch(key) else 'its key'}): "
                             "not a date or date-time in ISO 8601") from None
    missing = [k for k in _TOP if k not in record]
    if missing:
        raise ValueError(f"{_where(f)}: missing {', '.join(missing)}")
    return record


def _form(f: _File, catalog: Any) -> dict[str, Any]:
    if f.path.name == "shinsei.csv":
        return _csv_form(f)
    from bus.validation.validator import validate

    return dict(validate(f.data, content_type="application/xml", kind=FORM_KIND, catalog=catalog).record)


def _message(app: _Application, catalog: Any) -> bytes:
    """The pittari.shinsei XML of one application (ValueError / ValidationFailed if it cannot be)."""
    record = _form(app.form, catalog)
    record["attachments"] = [_attachment(f) for f in app.attachments]
    try:
        raw: bytes = catalog.get(KIND).to_xml(record)
    except Exception:  # a codec error may quote a value: say where only
        raise ValueError(f"{_where(app.form)}: the form does not fit {KIND}") from None
    return raw


async def take_pittari(path: Path, submit: Submit, catalog: Any, kind: str | None = None, max_records: int = 100_000,
                       limits: BatchLimits | None = None) -> tuple[str, dict[str, int], dict[str, Any]]:
    """Submit every application of the batch at `path`: (status, counts, detail for the result file).
    Status "rejected" when the batch was refused or any application was. `kind` is always
    pittari.shinsei (the inbox's setting does not apply); more than `max_records` applications
    refuse the batch (the directory source's signature of a file taker)."""
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    try:
        files = await asyncio.to_thread(read_batch, path, limits)
    except BatchRefused as exc:
        issue = Issue("R231", f"ぴったりサービス batch refused: {exc}; nothing of it was taken", "/")
        return "rejected", {**counts, "rejected": 1}, {"kind": KIND, "issues": [issue.to_dict()]}
    apps, stray = _applications(files)
    if len(apps) > max_records:
        issue = Issue("R231", f"ぴったりサービス batch refused: {len(apps)} applications, more than the cap of "
                              f"{max_records}; nothing of it was taken", "/")
        return "rejected", {**counts, "rejected": 1}, {"kind": KIND, "issues": [issue.to_dict()]}
    problems: list[dict[str, Any]] = [
        {"file": _where(f), "issues": [Issue("R231", f"{_where(f)}: not in any application folder "
                                                     f"(no {' or '.join(FORM_NAMES)} in its folder or above)",
                                             "/").to_dict()]} for f in stray]
    for app in apps:
        try:
            answer = await submit(_message(app, catalog), "application/xml", KIND)
        except ValidationFailed as exc:
            answer = Submission("rejected", kind=KIND, issues=tuple(exc.issues))
        except ValueError as exc:
            answer = Submission("rejected", kind=KIND, issues=(Issue("R231", str(exc), "/"),))
        counts[answer.status] += 1
        if answer.status == "rejected":
            problems.append({"file": _where(app.form), "issues": answer.to_dict()["issues"]})
    status = "rejected" if problems else "processed"
    return status, counts, {"kind": KIND, "applications": len(apps), "rejected_files": problems[:1000]}
