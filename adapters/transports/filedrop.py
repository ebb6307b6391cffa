"""File-drop sink: one file per message in a directory the receiving system reads.

Delivery is atomic and idempotent. The file is written to a temp file in the same
directory (a dotfile ending in ``.tmp``, which readers ignore), fsynced, then given its
final name ``<idempotency_key>.<ext>`` without ever replacing an existing file
(``os.link``; ``os.replace`` where the filesystem has no hard links), and the directory is
fsynced. A reader sees a file only once it is complete. A second delivery of the same key
is a no-op answered with a "duplicate" Receipt — also after the reader took the file away,
because each delivered key leaves an empty marker in ``<directory>/.renkei-delivered/``
(prune old markers as you like: they only guard against late redeliveries).

Formats (``format=``):

- ``xml``   the Outbound's validated XML. In CP932 the declaration says ``encoding="CP932"``,
            in JIS X 0208 ``encoding="Shift_JIS"`` (the IANA name of exactly that repertoire).
- ``csv``   RFC 4180, CRLF line ends, one header row of dotted field paths
            (``address.postal_code``; list items as ``items.0.name``) and one data row.
            Dates ISO 8601, booleans ``true``/``false``, absent values empty, code-list
            values as their 2-digit numeric codes (schemas/codelists.yaml). No BOM.
- ``fixed`` one line (CRLF) of fixed-width fields, widths in **bytes of the target
            encoding**, values left-aligned and padded with ASCII spaces; dates ``YYYYMMDD``,
            booleans ``1``/``0``. The layout is ``layout=[(path, width), ...]`` when given
            (use `fixed_layout(avro_schema)` to derive a stable one from a kind's schema);
            otherwise it is derived from the record's flattened fields in order, each width
            from `DEFAULT_WIDTHS` by leaf name, else by value type (date 8, bool 1, int 10,
            text 40). A value longer than its width, or holding a control character, is a
            PermanentError naming the field and the width — never the value.

Encodings (``encoding=``): ``utf-8``, ``cp932`` (Windows-31J, what "Shift_JIS" means in
Japanese municipal systems: the aliases ``shift_jis``/``sjis`` mean CP932 on purpose) or
``jisx0208`` (for receivers that take JIS X 0208 only: Shift_JIS bytes of ASCII/JIS X 0201 Roman
and JIS X 0208, written by Python's ``shift_jis`` codec; no NEC special characters ① Ⅰ ㈱, no
NEC-selected/IBM extension kanji 髙 﨑, no user area, and no half-width katakana, which the codec
would take but JIS X 0208 is not: the repertoire is ``bus.validation.degrade``'s ``jisx0208``.
≒ ∵ ≡ √ ∠ are JIS X 0208 and are written. The backslash and ``¥`` both become 0x5C, ``~`` and ``‾``
0x7E, as in any Shift_JIS file). Before encoding to CP932 the JIS/Microsoft variant pairs are
folded to the code point CP932 holds (U+2014 EM DASH → U+2015, as a Shift_JIS encoder
writes 0x815C); 〜 U+301C, ‖, −, ¢, £, ¬ are encoded by the codec as their CP932 twins.
Before encoding to JIS X 0208 the Microsoft forms are folded to the JIS ones (～ → 〜 U+301C,
∥ → ‖, － → −, ￠ ￡ ￢ → ¢ £ ¬, — → ―): the same bytes a CP932 file holds for them
(`filedrop_format.FOLDS`). The fold is not a degradation and is not listed in the sidecar.
Characters the encoding cannot hold (𠮷 U+20BB7 in both; 髙 U+9AD9 and ① in jisx0208 only:
CP932 holds them) and every
private-use character (vendor 外字, which CP932 would silently map into its user area)
are *unmappable*, handled by ``unmappable=``:

- ``reject``      PermanentError naming the field path and the code point (U+XXXX);
- ``replace``     written as 〓 (geta, U+3013) and listed in a sidecar
                  ``<key>.<ext>.unmappable.json`` (field path, code point, position),
                  written before the file itself;
- ``numeric-ref`` XML only: written as a character reference ``&#NNNNN;``;
- ``degrade``     CSV / fixed width in CP932 or JIS X 0208: each character the encoding
                  lacks is degraded (bus.validation.degrade: IVS → base, the MJ縮退マップ
                  髙 → 高 﨑 → 崎, 互換漢字 → 統合漢字, the MJ+ mapping) and every step listed in
                  the sidecar; a character with no substitute (① in JIS X 0208) is a
                  PermanentError naming the field and the code point, never 〓.

Filesystem errors (disk full, directory gone, permission) raise TransientError: they are
not the message's fault and an operator can fix them before the retry deadline.
"""

from __future__ import annotations

import asyncio
import csv
import errno
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from lxml import etree

from adapters.transports.filedrop_format import (
    CODECS,
    DEFAULT_WIDTHS,
    FOLDS,
    GETA,
    as_text,
    default_width,
    encodable,
    fixed_layout,
    flatten,
    fsync_dir,
    unmappable,
    write_atomic,
    xml_texts,
)
from bus.catalog.numeric import numeric_record
from bus.errors import ConfigError, PermanentError, TransientError
from bus.ports import Outbound, Receipt
from bus.validation.degrade import Target, degrade_record

__all__ = ["DEFAULT_WIDTHS", "GETA", "FileDropSink", "fixed_layout", "flatten"]

LEDGER = ".renkei-delivered"
_ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "cp932": "cp932",
    "windows-31j": "cp932",
    "ms932": "cp932",
    "shift_jis": "cp932",
    "sjis": "cp932",
    "jisx0208": "jisx0208",
    "jis_x_0208": "jisx0208",
}
_LABELS = {"cp932": "CP932", "jisx0208": "JIS X 0208"}
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)

Layout = Sequence[tuple[str, int]]


class FileDropSink:
    """Write each message as one file in `directory` (see the module docstring)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        format: Literal["xml", "csv", "fixed"] = "xml",
        encoding: str = "utf-8",
        unmappable: Literal["reject", "replace", "numeric-ref", "degrade"] = "reject",
        layout: Layout | None = None,
        name: str | None = None,
    ) -> None:
        if format not in ("xml", "csv", "fixed"):
            raise ConfigError(f"file sink: format must be xml, csv or fixed, got {format!r}")
        if encoding.lower() not in _ENCODINGS:
            raise ConfigError(f"file sink: encoding must be utf-8, cp932 or jisx0208, got {encoding!r}")
        if unmappable not in ("reject", "replace", "numeric-ref", "degrade"):
            raise ConfigError(f"file sink: unmappable must be reject, replace, numeric-ref or degrade: {unmappable!r}")
        if unmappable == "degrade" and (format == "xml" or _ENCODINGS[encoding.lower()] == "utf-8"):
            raise ConfigError("file sink: unmappable='degrade' is for CSV or fixed width in cp932 or jisx0208")
        if unmappable == "numeric-ref" and format != "xml":
            raise ConfigError("file sink: unmappable='numeric-ref' is for format='xml' only")
        if layout is not None and format != "fixed":
            raise ConfigError("file sink: `layout` applies to format='fixed' only")
        self.directory = Path(directory)
        self.format = format
        self.encoding = _ENCODINGS[encoding.lower()]
        self._codec = CODECS[self.encoding]
        self._fold = FOLDS[self.encoding]
        self.unmappable = unmappable
        self.layout = [(str(p), int(w)) for p, w in layout] if layout is not None else None
        self.name = name or self.directory.name
        self.ext = format if format != "fixed" else "dat"
        try:
            (self.directory / LEDGER).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"file sink: cannot use directory {self.directory}: {exc.strerror}") from None

    async def deliver(self, message: Outbound) -> Receipt:
        return await asyncio.to_thread(self.deliver_sync, message)

    def deliver_sync(self, message: Outbound) -> Receipt:
        """The blocking delivery (also usable from synchronous batch code)."""
        key = message.envelope.idempotency_key
        destination = message.envelope.destination or self.name
        if not _KEY.match(key):
            raise PermanentError(f"{destination}: idempotency key is not a safe file name")
        final = self.directory / f"{key}.{self.ext}"
        marker = self.directory / LEDGER / key
        try:
            if final.exists() or marker.exists():
                return Receipt(destination, key, "duplicate", final.name)
            payload, replaced = self.render(message, destination)
            if replaced:
                sidecar = {
                    "file": final.name,
                    "message_id": message.envelope.message_id,
                    "replacement": GETA if self.unmappable != "degrade" else "MJ縮退 (bus.validation.degrade)",
                    "replaced": replaced,
                }
                data = json.dumps(sidecar, ensure_ascii=False, indent=1).encode()
                write_atomic(self.directory, f"{final.name}.unmappable.json", data, overwrite=True)
            created = write_atomic(self.directory, final.name, payload, overwrite=False)
            marker.parent.mkdir(exist_ok=True)
            marker.touch()
            fsync_dir(self.directory)
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0, "OSError")
            raise TransientError(f"{destination}: cannot write to {self.directory}: {code}") from None
        return Receipt(destination, key, "applied" if created else "duplicate", final.name)

    # -- rendering -------------------------------------------------------------------

    def render(self, message: Outbound, destination: str = "") -> tuple[bytes, list[dict[str, Any]]]:
        """The file's bytes and the list of replaced characters (field path + code point)."""
        if self.format == "xml":
            return self._xml(message.xml, destination)
        # CSV and fixed width carry the numeric codes of schemas/codelists.yaml, not enum symbols
        envelope = message.envelope
        record = numeric_record(envelope.kind, envelope.schema_version, message.record)
        if self.unmappable == "degrade":  # MJ縮退 for a CP932/JIS X 0208 receiver: every step reported, never 〓
            target: Target = "jisx0208" if self.encoding == "jisx0208" else "cp932"
            degraded = degrade_record(_folded(record, self._fold), target)
            if degraded.unmappable:
                points = ", ".join(f"{s.path} {s.original}" for s in degraded.unmappable)
                raise PermanentError(
                    f"{destination}: no {_LABELS[target]} substitute for {points} (unmappable='degrade')")
            fields = flatten(degraded.record)
            data, left = self._csv(fields, destination) if self.format == "csv" else self._fixed(fields, destination)
            if left:  # never a silent 〓
                raise PermanentError(f"{destination}: {left[0]['field']} {left[0]['code_point']} cannot be degraded")
            return data, [step.as_dict() for step in degraded.steps]
        fields = flatten(record)
        if self.format == "csv":
            return self._csv(fields, destination)
        return self._fixed(fields, destination)

    def _xml(self, xml: bytes, destination: str) -> tuple[bytes, list[dict[str, Any]]]:
        if self.encoding == "utf-8":
            return xml, []  # validated XML bytes are already UTF-8
        root = etree.fromstring(xml, _PARSER)
        replaced: list[dict[str, Any]] = []
        for path, text in xml_texts(root):
            replaced += self._scan(path, text.translate(self._fold), destination)
        body = etree.tostring(root, encoding="unicode").translate(self._fold)
        if self.unmappable == "numeric-ref":
            body = "".join(f"&#{ord(c)};" if unmappable(c, self.encoding) else c for c in body)
        elif replaced:
            body = "".join(GETA if unmappable(c, self.encoding) else c for c in body)
        declared = "Shift_JIS" if self.encoding == "jisx0208" else "CP932"
        head = f'<?xml version="1.0" encoding="{declared}"?>\n'
        return (head + body + "\n").encode(self._codec), replaced

    def _csv(self, fields: list[tuple[str, Any]], destination: str) -> tuple[bytes, list[dict[str, Any]]]:
        replaced: list[dict[str, Any]] = []
        row = []
        for path, value in fields:
            text = as_text(value, dates="iso")
            text = text.translate(self._fold)
            found = self._scan(path, text, destination)
            replaced += found
            row.append(encodable(text, self.encoding) if found else text)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([p for p, _ in fields])
        writer.writerow(row)
        return out.getvalue().encode(self._codec), replaced

    def _fixed(self, fields: list[tuple[str, Any]], destination: str) -> tuple[bytes, list[dict[str, Any]]]:
        values = dict(fields)
        layout = self.layout or [(p, default_width(p, v)) for p, v in fields]
        replaced: list[dict[str, Any]] = []
        line = bytearray()
        for path, width in layout:
            text = as_text(values.get(path), dates="compact")
            text = text.translate(self._fold)
            if _CONTROL.search(text):
                raise PermanentError(f"{destination}: field {path}: control character in a fixed-width field")
            found = self._scan(path, text, destination)
            replaced += found
            data = (encodable(text, self.encoding) if found else text).encode(self._codec)
            if len(data) > width:
                raise PermanentError(
                    f"{destination}: field {path}: {len(data)} bytes in {self.encoding} "
                    f"exceed the fixed width of {width}"
                )
            line += data + b" " * (width - len(data))
        return bytes(line) + b"\r\n", replaced

    def _scan(self, path: str, text: str, destination: str) -> list[dict[str, Any]]:
        """Unmappable characters of one field, or PermanentError under unmappable='reject'."""
        found = [(i, c) for i, c in enumerate(text) if unmappable(c, self.encoding)]
        if not found:
            return []
        if self.unmappable == "reject":
            points = ", ".join(sorted({f"U+{ord(c):04X}" for _, c in found}))
            raise PermanentError(
                f"{destination}: field {path}: {points} cannot be written in {self.encoding} "
                "(unmappable='reject'; use 'replace' or fix the data)"
            )
        return [{"field": path, "code_point": f"U+{ord(c):04X}", "position": i} for i, c in found]

    def __repr__(self) -> str:
        return f"FileDropSink({str(self.directory)!r}, format={self.format!r}, encoding={self.encoding!r})"


def _folded(value: Any, fold: dict[int, str]) -> Any:
    """`value` (mappings, lists, strings) with the variant pairs folded in every string."""
    if isinstance(value, str):
        return value.translate(fold)
    if isinstance(value, Mapping):
        return {k: _folded(v, fold) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_folded(v, fold) for v in value]
    return value
