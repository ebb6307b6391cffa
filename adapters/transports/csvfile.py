"""CSV file sink: the changes of one period in one file per destination, with a control record.

In ``renkei.toml``::

    [destinations.kokuho]
    transport = "csv"
    directory = "/srv/renkei/out/kokuho"     # the share the vendor's batch job reads
    encoding = "cp932"                        # or "utf-8"
    period = "day"                            # or "hour", "minute": one file per period (JST)
    layout = "csv"                            # or "fixed": fixed-width CP932 records (fixed_layout)

Each delivery appends one row (``連携キー[key]`` then the kind's layout, docs/file-layouts.md)
to the period's working file ``.renkei-csv/<kind>@<version>-<period>.part`` and fsyncs it: "applied"
means durable. A key already in the working file or in a published one is "duplicate".
When a later period begins (at the next delivery, or `seal_due`), the working file is
published: header + rows + control record (``#renkei-control,rows=N,sha256=…``) written to
a temporary name, fsynced and renamed to ``<name>-<kind>-<period>.csv``; its keys join
``.renkei-csv/delivered.keys``. A crash at any step leaves either the working file (published
again on the next try, the same bytes) or the published file (the leftover working file is
then removed): never half a file under the final name, never a row twice.

The vendor acknowledges a file by writing ``<file>.receipt`` holding its control line (or
``rows=N,sha256=…``); `receipts()` reads them back: confirmed, mismatch, or pending.

With ``layout = "fixed"`` the file is ``<name>-<kind>-<period>.dat``: no header, each record the
64-byte 連携キー then the kind's fixed-width record (adapters.transports.fixed_layout, CP932
only), the same control record counting every record.

A JIS/Microsoft variant pair is written at its one CP932 position (— U+2014 as ― U+2015, 0x815C:
csv_layout.fold, as the file-drop sink does). A character the encoding cannot hold, or a
private-use 外字, refuses the message for good (PermanentError naming row, column and code
point, never the value): it is never replaced.
A missing or unwritable directory is a TransientError.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from adapters.transports.csv_layout import Layout, UnmappableError, control_record, encode_rows, split_control
from adapters.transports.fixed_layout import KEY_WIDTH, FixedLayout, fixed_control
from bus.errors import ConfigError, PermanentError, TransientError
from bus.ports import Outbound, Receipt

__all__ = ["CsvFileSink", "FileReceipt"]

JST = timezone(timedelta(hours=9))
_PERIODS = {"day": "%Y%m%d", "hour": "%Y%m%d%H", "minute": "%Y%m%d%H%M"}
KEY_HEADER = "連携キー[key]"


@dataclass(frozen=True, slots=True)
class FileReceipt:
    file: str
    status: Literal["confirmed", "mismatch", "pending"]


class CsvFileSink:
    def __init__(self, directory: str | os.PathLike[str], *, encoding: Literal["utf-8", "cp932"] = "cp932",
                 period: Literal["day", "hour", "minute"] = "day", name: str | None = None, catalog: Any = None,
                 clock: Callable[[], datetime] | None = None, layout: Literal["csv", "fixed"] = "csv") -> None:
        if encoding not in ("utf-8", "cp932"):
            raise ConfigError(f"csv sink: encoding must be utf-8 or cp932, got {encoding!r}")
        if layout not in ("csv", "fixed"):
            raise ConfigError(f"csv sink: layout must be csv or fixed, got {layout!r}")
        if layout == "fixed" and encoding != "cp932":
            raise ConfigError("csv sink: a fixed-width layout is CP932 (byte widths); drop encoding or set cp932")
        self.fixed = layout == "fixed"
        self.suffix = ".dat" if self.fixed else ".csv"
        if period not in _PERIODS:
            raise ConfigError(f"csv sink: period must be one of {', '.join(_PERIODS)}, got {period!r}")
        self.directory = Path(directory)
        self.encoding = encoding
        self.period = period
        self.name = name or self.directory.name
        self._catalog = catalog
        self._clock = clock or (lambda: datetime.now(JST))
        self._layouts: dict[tuple[str, int | None], Layout] = {}
        self._fixed: dict[tuple[str, int | None], FixedLayout] = {}
        self._keys: set[str] | None = None

    @property
    def state(self) -> Path:
        return self.directory / ".renkei-csv"

    async def deliver(self, message: Outbound) -> Receipt:
        envelope = message.envelope
        destination = envelope.destination or self.name
        key = envelope.idempotency_key
        try:
            line = self._line(key, envelope.kind, envelope.schema_version, message.record)
        except UnmappableError as exc:
            raise PermanentError(f"{destination}: {exc}") from None
        period = self._clock().strftime(_PERIODS[self.period])
        try:
            if not self.directory.is_dir():
                raise FileNotFoundError(f"{self.directory} is not a directory")
            self.seal_due(period)
            keys = self._known_keys()
            final = self._final(envelope.kind, period)
            if key in keys:
                return Receipt(destination, key, "duplicate", final.name)
            _append(self.state / f"{envelope.kind}@{envelope.schema_version}-{period}.part", line)
            keys.add(key)
        except OSError as exc:
            self._keys = None  # re-read from disk next time
            raise TransientError(f"{destination}: cannot write in {self.directory} ({type(exc).__name__})") from None
        return Receipt(destination, key, "applied", final.name)

    def seal_due(self, current: str | None = None) -> list[Path]:
        """Publish every working file of a period before `current` (all of them when None)."""
        published: list[Path] = []
        if not self.state.is_dir():
            return published
        for part in sorted(self.state.glob("*.part")):
            kind_at, _, period = part.stem.rpartition("-")
            kind, _, version = kind_at.partition("@")  # no @version: a working file of before pins (the latest)
            if current is None or period < current:
                published.append(self._seal(part, kind, period, int(version) if version else None))
        return published

    def receipts(self) -> list[FileReceipt]:
        """Each published file and whether the vendor's receipt file confirms it."""
        found = []
        for path in sorted(self.directory.glob(f"{self.name}-*{self.suffix}")):
            receipt = path.with_name(path.name + ".receipt")
            if not receipt.exists():
                found.append(FileReceipt(path.name, "pending"))
                continue
            _, control = split_control(path.read_bytes())
            said = receipt.read_text(encoding="ascii", errors="replace").strip().removeprefix("#renkei-control,")
            expected = f"rows={control['rows']},sha256={control['sha256']}" if control else ""
            found.append(FileReceipt(path.name, "confirmed" if said == expected else "mismatch"))
        return found

    async def aclose(self) -> None:
        """Nothing to close: working files stay until their period is over."""

    def _seal(self, part: Path, kind: str, period: str, version: int | None = None) -> Path:
        final = self._final(kind, period)
        rows = part.read_bytes()
        if not final.exists():
            if self.fixed:
                body, control = rows, fixed_control(rows)
            else:
                body = encode_rows([[KEY_HEADER, *self._layout(kind, version).headers()]], self.encoding) + rows
                control = control_record(body)
            tmp = self.directory / f".{final.name}.tmp"
            with tmp.open("wb") as fh:
                fh.write(body + control)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            _sync_dir(self.directory)
        keys = [self._key_of(line) for line in rows.split(b"\r\n") if line]
        _append(self.state / "delivered.keys", "".join(f"{k}\n" for k in keys).encode("ascii"))
        part.unlink()
        return final

    def _known_keys(self) -> set[str]:
        if self._keys is None:
            self.state.mkdir(exist_ok=True)
            keys: set[str] = set()
            delivered = self.state / "delivered.keys"
            if delivered.exists():
                keys.update(delivered.read_text(encoding="ascii").split())
            for part in self.state.glob("*.part"):
                data = _complete_lines(part)
                keys.update(self._key_of(line) for line in data.split(b"\r\n") if line)
            self._keys = keys
        return self._keys

    def _final(self, kind: str, period: str) -> Path:
        return self.directory / f"{self.name}-{kind}-{period}{self.suffix}"

    def _line(self, key: str, kind: str, version: int, record: dict[str, Any]) -> bytes:
        """One row or record of the file (UnmappableError for what it cannot hold)."""
        if self.fixed:
            if (kind, version) not in self._fixed:
                self._fixed[kind, version] = FixedLayout(self._layout(kind, version).kind_schema,
                                                         self._catalog.codelists, keyed=True)
            return self._fixed[kind, version].encode([(key, record)])
        layout = self._layout(kind, version)  # a pinned destination's version
        return encode_rows([[key, *layout.row(record)]], self.encoding, headers=[KEY_HEADER, *layout.headers()])

    def _key_of(self, line: bytes) -> str:
        if self.fixed:
            return line[:KEY_WIDTH].decode("ascii").rstrip(" ")
        return line.split(b",", 1)[0].decode("ascii")

    def _layout(self, kind: str, version: int | None) -> Layout:
        if (kind, version) not in self._layouts:
            if self._catalog is None:
                from bus.catalog import Catalog

                self._catalog = Catalog.load()
            self._layouts[kind, version] = Layout(self._catalog.get(kind, version))
        return self._layouts[kind, version]

    def __repr__(self) -> str:
        return f"CsvFileSink({self.name!r}, {self.encoding}, per {self.period})"


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _complete_lines(part: Path) -> bytes:
    """The working file up to its last complete row (a torn last row, from a crash, is cut off)."""
    data = part.read_bytes()
    end = data.rfind(b"\r\n") + 2 if b"\r\n" in data else 0
    if end != len(data):
        with part.open("r+b") as fh:
            fh.truncate(end)
            os.fsync(fh.fileno())
    return data[:end]


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
