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

- ``xml``   the Outbound's validated XML. In CP932 the declaration says ``encoding="CP932"``.
- ``csv``   RFC 4180, CRLF line ends, one header row of dotted field paths
            (``address.postal_code``; list items as ``items.0.name``) and one data row.
            Dates ISO 8601, booleans ``true``/``false``, absent values empty. No BOM.
- ``fixed`` one line (CRLF) of fixed-width fields, widths in **bytes of the target
            encoding**, values left-aligned and padded with ASCII spaces; dates ``YYYYMMDD``,
            booleans ``1``/``0``. The layout is ``layout=[(path, width), ...]`` when given
            (use `fixed_layout(avro_schema)` to derive a stable one from a kind's schema);
            otherwise it is derived from the record's flattened fields in order, each width
            from `DEFAULT_WIDTHS` by leaf name, else by value type (date 8, bool 1, int 10,
            text 40). A value longer than its width, or holding a control character, is a
            PermanentError naming the field and the width — never the value.

Encodings (``encoding=``): ``utf-8`` or ``cp932`` (Windows-31J, what "Shift_JIS" means in
Japanese municipal systems). Before encoding to CP932 the JIS/Microsoft variant pairs are
folded to the code point CP932 holds (U+2014 EM DASH → U+2015, as a Shift_JIS encoder
writes 0x815C); 〜 U+301C, ‖, −, ¢, £, ¬ are encoded by the codec as their CP932 twins.
Characters CP932 cannot hold (e.g. 𠮷 U+20BB7; 髙 U+9AD9 and ① are fine) and every
private-use character (vendor 外字, which CP932 would silently map into its user area)
are *unmappable*, handled by ``unmappable=``:

- ``reject``      PermanentError naming the field path and the code point (U+XXXX);
- ``replace``     written as 〓 (geta, U+3013) and listed in a sidecar
                  ``<key>.<ext>.unmappable.json`` (field path, code point, position),
                  written before the file itself;
- ``numeric-ref`` XML only: written as a character reference ``&#NNNNN;``.

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
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from lxml import etree

from bus.errors import ConfigError, PermanentError, TransientError
from bus.ports import Outbound, Receipt

__all__ = ["DEFAULT_WIDTHS", "GETA", "FileDropSink", "fixed_layout", "flatten"]

GETA = "\u3013"  # 〓
LEDGER = ".renkei-delivered"
_ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "cp932": "cp932",
    "windows-31j": "cp932",
    "ms932": "cp932",
    "shift_jis": "cp932",
    "sjis": "cp932",
}
_FOLD = str.maketrans({"\u2014": "\u2015"})
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)

#: fixed-width defaults in bytes, by leaf field name (override with `layout`)
DEFAULT_WIDTHS: dict[str, int] = {
    "municipality_code": 6,
    "address_number": 15,
    "history_number": 6,
    "resident_code": 11,
    "personal_number": 12,
    "integrated_address_number": 15,
    "household_number": 15,
    "cancelled_history_number": 6,
    "postal_code": 7,
    "prefecture": 12,
    "city": 30,
    "town": 90,
    "banchi": 60,
    "building": 90,
    "family_name": 60,
    "given_name": 60,
    "family_name_kana": 90,
    "given_name_kana": 90,
    "former_family_name": 60,
    "former_family_name_kana": 90,
    "alias_name": 60,
    "alias_name_kana": 90,
    "nationality": 2,
    "moved_out_country": 2,
    "reason": 20,
    "sex": 6,
    "relationship": 16,
    "resident_type": 8,
    "resident_status": 8,
    "nenkin_category": 6,
}

Layout = Sequence[tuple[str, int]]


class FileDropSink:
    """Write each message as one file in `directory` (see the module docstring)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        format: Literal["xml", "csv", "fixed"] = "xml",
        encoding: str = "utf-8",
        unmappable: Literal["reject", "replace", "numeric-ref"] = "reject",
        layout: Layout | None = None,
        name: str | None = None,
    ) -> None:
        if format not in ("xml", "csv", "fixed"):
            raise ConfigError(f"file sink: format must be xml, csv or fixed, got {format!r}")
        if encoding.lower() not in _ENCODINGS:
            raise ConfigError(f"file sink: encoding must be utf-8 or cp932, got {encoding!r}")
        if unmappable not in ("reject", "replace", "numeric-ref"):
            raise ConfigError(f"file sink: unmappable must be reject, replace or numeric-ref: {unmappable!r}")
        if unmappable == "numeric-ref" and format != "xml":
            raise ConfigError("file sink: unmappable='numeric-ref' is for format='xml' only")
        if layout is not None and format != "fixed":
            raise ConfigError("file sink: `layout` applies to format='fixed' only")
        self.directory = Path(directory)
        self.format = format
        self.encoding = _ENCODINGS[encoding.lower()]
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
                    "replacement": GETA,
                    "replaced": replaced,
                }
                data = json.dumps(sidecar, ensure_ascii=False, indent=1).encode()
                _write_atomic(self.directory, f"{final.name}.unmappable.json", data, overwrite=True)
            created = _write_atomic(self.directory, final.name, payload, overwrite=False)
            marker.parent.mkdir(exist_ok=True)
            marker.touch()
            _fsync_dir(self.directory)
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0, "OSError")
            raise TransientError(f"{destination}: cannot write to {self.directory}: {code}") from None
        return Receipt(destination, key, "applied" if created else "duplicate", final.name)

    # -- rendering -------------------------------------------------------------------

    def render(self, message: Outbound, destination: str = "") -> tuple[bytes, list[dict[str, Any]]]:
        """The file's bytes and the list of replaced characters (field path + code point)."""
        if self.format == "xml":
            return self._xml(message.xml, destination)
        fields = flatten(message.record)
        if self.format == "csv":
            return self._csv(fields, destination)
        return self._fixed(fields, destination)

    def _xml(self, xml: bytes, destination: str) -> tuple[bytes, list[dict[str, Any]]]:
        if self.encoding == "utf-8":
            return xml, []  # validated XML bytes are already UTF-8
        root = etree.fromstring(xml, _PARSER)
        replaced: list[dict[str, Any]] = []
        for path, text in _xml_texts(root):
            replaced += self._scan(path, text.translate(_FOLD), destination)
        body = etree.tostring(root, encoding="unicode").translate(_FOLD)
        if self.unmappable == "numeric-ref":
            body = "".join(f"&#{ord(c)};" if _unmappable(c, self.encoding) else c for c in body)
        elif replaced:
            body = "".join(GETA if _unmappable(c, self.encoding) else c for c in body)
        head = '<?xml version="1.0" encoding="CP932"?>\n'
        return (head + body + "\n").encode(self.encoding), replaced

    def _csv(self, fields: list[tuple[str, Any]], destination: str) -> tuple[bytes, list[dict[str, Any]]]:
        replaced: list[dict[str, Any]] = []
        row = []
        for path, value in fields:
            text = _text(value, dates="iso")
            if self.encoding == "cp932":
                text = text.translate(_FOLD)
            found = self._scan(path, text, destination)
            replaced += found
            row.append(_replace(text, self.encoding) if found else text)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([p for p, _ in fields])
        writer.writerow(row)
        return out.getvalue().encode(self.encoding), replaced

    def _fixed(self, fields: list[tuple[str, Any]], destination: str) -> tuple[bytes, list[dict[str, Any]]]:
        values = dict(fields)
        layout = self.layout or [(p, _default_width(p, v)) for p, v in fields]
        replaced: list[dict[str, Any]] = []
        line = bytearray()
        for path, width in layout:
            text = _text(values.get(path), dates="compact")
            if self.encoding == "cp932":
                text = text.translate(_FOLD)
            if _CONTROL.search(text):
                raise PermanentError(f"{destination}: field {path}: control character in a fixed-width field")
            found = self._scan(path, text, destination)
            replaced += found
            data = (_replace(text, self.encoding) if found else text).encode(self.encoding)
            if len(data) > width:
                raise PermanentError(
                    f"{destination}: field {path}: {len(data)} bytes in {self.encoding} "
                    f"exceed the fixed width of {width}"
                )
            line += data + b" " * (width - len(data))
        return bytes(line) + b"\r\n", replaced

    def _scan(self, path: str, text: str, destination: str) -> list[dict[str, Any]]:
        """Unmappable characters of one field, or PermanentError under unmappable='reject'."""
        found = [(i, c) for i, c in enumerate(text) if _unmappable(c, self.encoding)]
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


# -- helpers ---------------------------------------------------------------------------


def flatten(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}, "c": [x]}`` → ``[("a.b", 1), ("c.0", x)]``, in record order."""
    out: list[tuple[str, Any]] = []
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += flatten(value, path + ".")
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    out += flatten(item, f"{path}.{i}.")
                else:
                    out.append((f"{path}.{i}", item))
        else:
            out.append((path, value))
    return out


def fixed_layout(schema: Mapping[str, Any], widths: Mapping[str, int] | None = None) -> list[tuple[str, int]]:
    """A stable fixed-width layout from an Avro record schema (nested records flattened).

    Widths come from `widths` (by dotted path or leaf name), then `DEFAULT_WIDTHS`, then
    the type: date 8, boolean 1, int/long 10, enum the longest symbol, string 40.
    """
    table = {**DEFAULT_WIDTHS, **(widths or {})}
    return list(_schema_fields(schema, "", table, {}))


def _schema_fields(
    schema: Any, prefix: str, table: Mapping[str, int], named: dict[str, Any]
) -> Iterator[tuple[str, int]]:
    _register(schema, named)
    for field in schema.get("fields", []):
        path = prefix + field["name"]
        ftype = field["type"]
        if isinstance(ftype, list):  # ["null", T]
            branches = [t for t in ftype if t != "null"]
            if len(branches) != 1:
                raise ConfigError(f"fixed layout: field {path} is a union the layout cannot hold")
            ftype = branches[0]
        if isinstance(ftype, str) and ftype in named:
            ftype = named[ftype]  # a reference to a named type defined earlier
        elif isinstance(ftype, dict):
            _register(ftype, named)
        if isinstance(ftype, dict) and ftype.get("type") == "record":
            yield from _schema_fields(ftype, path + ".", table, named)
            continue
        if isinstance(ftype, dict) and ftype.get("type") in ("array", "map"):
            raise ConfigError(f"fixed layout: field {path} is a list, which fixed-width cannot hold")
        width = table.get(path) or table.get(field["name"])
        if width is None:
            width = _type_width(ftype)
        yield path, width


def _register(schema: Any, named: dict[str, Any]) -> None:
    """Remember a named type under its short and full name (Avro allows both references)."""
    name = schema.get("name") if isinstance(schema, dict) else None
    if not name:
        return
    named[name] = schema
    named[name.rsplit(".", 1)[-1]] = schema
    if schema.get("namespace"):
        named[f"{schema['namespace']}.{name}"] = schema


def _type_width(ftype: Any) -> int:
    if isinstance(ftype, dict):
        if ftype.get("logicalType") == "date":
            return 8
        if ftype.get("type") == "enum":
            return max((len(s) for s in ftype.get("symbols", [])), default=1)
        ftype = ftype.get("type")
    return {"boolean": 1, "int": 10, "long": 19}.get(str(ftype), 40)


def _default_width(path: str, value: Any) -> int:
    leaf = path.rsplit(".", 1)[-1]
    if leaf in DEFAULT_WIDTHS:
        return DEFAULT_WIDTHS[leaf]
    if isinstance(value, bool):
        return 1
    if isinstance(value, date):
        return 8
    if isinstance(value, int):
        return 10
    return 40


def _text(value: Any, dates: Literal["iso", "compact"]) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return ("true" if value else "false") if dates == "iso" else ("1" if value else "0")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat() if dates == "iso" else value.strftime("%Y%m%d")
    return str(value)


def _unmappable(char: str, encoding: str) -> bool:
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return True  # a lone surrogate is never text
    if encoding == "utf-8":
        return False
    if 0xE000 <= code <= 0xF8FF or code >= 0xF0000:
        return True  # private use (外字): never map silently into CP932's user area
    try:
        char.encode(encoding)
    except UnicodeEncodeError:
        return True
    return False


def _replace(text: str, encoding: str) -> str:
    return "".join(GETA if _unmappable(c, encoding) else c for c in text)


def _xml_texts(root: Any) -> Iterable[tuple[str, str]]:
    """(dotted path of local names below the root, text) for every text and attribute."""

    def walk(element: Any, path: str) -> Iterator[tuple[str, str]]:
        for name, value in element.attrib.items():
            yield f"{path}@{etree.QName(name).localname}", value
        if element.text:
            yield path or etree.QName(element).localname, element.text
        for child in element:
            if not isinstance(child.tag, str):
                continue  # comments, processing instructions
            name = etree.QName(child).localname
            yield from walk(child, f"{path}.{name}" if path else name)
            if child.tail:
                yield path or etree.QName(element).localname, child.tail

    return walk(root, "")


def _write_atomic(directory: Path, name: str, data: bytes, *, overwrite: bool) -> bool:
    """Write `data` as directory/name via a fsynced temp file; False if it already existed."""
    tmp = directory / f".{name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        target = directory / name
        if overwrite:
            os.replace(tmp, target)
            return True
        try:
            os.link(tmp, target)  # atomic and never clobbers: a racing twin gets FileExistsError
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if target.exists():
                return False
            os.replace(tmp, target)  # no hard links here (e.g. some network shares)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
