"""Safe XML parsing: hostile input is rejected before and while it is parsed (DESIGN §3, §8).

Order, each step with its stable code (bus.validation.issues):

1. size cap (R100) — before anything else looks at the bytes;
2. byte-level pre-checks, all cheap C scans: UTF-16/32 BOM, NUL bytes, declared encoding
   other than UTF-8 or a BOM that contradicts it (R207); ``<!DOCTYPE`` anywhere (R201);
   ``<!ENTITY`` or a reference to any entity but the five predefined ones (R202);
3. parse with a hardened lxml parser (no entity resolution, no DTD loading or validation, no
   network, no huge trees); libxml2's own limits map to R205 (depth) and R206 (text);
   anything else not well-formed is R200, invalid UTF-8 is R207;
4. tree checks, run only when a byte screen says they could apply: processing instructions
   (R203), XInclude elements (R204), depth over the limit (R205), a text node or attribute
   over the limit (R206), ``xsi:schemaLocation`` / ``xsi:noNamespaceSchemaLocation`` (R208).

Nothing here reads a file or opens a socket: entities are never resolved, DTDs never loaded,
XInclude never processed, schema location hints never followed. Parsers are per thread.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from bus.errors import ValidationFailed
from bus.validation.issues import Issue

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_MAX_TEXT",
    "check_size",
    "hardened_parser",
    "line_column",
    "parse_xml",
    "sourceline",
]

DEFAULT_MAX_SIZE = 1 << 20  # 1 MiB
DEFAULT_MAX_DEPTH = 256  # libxml2 without XML_PARSE_HUGE stops at 256 as well
DEFAULT_MAX_TEXT = 64 * 1024  # bytes of one text node or attribute value (UTF-8)

_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_SCHEMA_HINTS = (f"{{{_XSI}}}schemaLocation", f"{{{_XSI}}}noNamespaceSchemaLocation")
_XINCLUDE_NAMESPACES = ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude")

_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe\x00\x00", "UTF-32LE"),
    (b"\xfe\xff", "UTF-16BE"),
    (b"\xff\xfe", "UTF-16LE"),
)
_ODD_FIRST_BYTES = frozenset({b"\x00", b"\xfe", b"\xff"})
_DECL_ENCODING = re.compile(rb"""\sencoding\s*=\s*["']([A-Za-z0-9._\-]*)["']""")
_UTF8_NAMES = frozenset({b"utf-8", b"utf8"})
_ENTITY_REF = re.compile(rb"&(?!(?:lt|gt|amp|quot|apos);)[A-Za-z_:][^;\s<&]{0,80};")

_local = threading.local()


class _DenyAll(etree.Resolver):
    """Answers every request for an external entity or DTD with nothing.

    libxml2 still reads a parameter entity declared in an internal subset (``<!ENTITY % x
    SYSTEM "file:…"> %x;``) with resolve_entities=False and load_dtd=False; this resolver
    makes that read return an empty string instead of the file. (DOCTYPEs are rejected on
    the bytes before parsing anyway: this is the second wall.)
    """

    def resolve(self, system_url: str, public_id: str, context: object) -> object:  # type: ignore[override]
        return self.resolve_string("", context, base_url=None)  # lxml-stubs omit `context`


def hardened_parser() -> etree.XMLParser:
    """This thread's hardened lxml parser (never resolves, loads or fetches anything)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_pis=False,
            collect_ids=False,
            remove_comments=False,
        )
        parser.resolvers.add(_DenyAll())
        _local.parser = parser
    return parser


def _fail(code: str, message: str, *, line: int | None = None, column: int | None = None,
          expected: str | None = None) -> ValidationFailed:
    return ValidationFailed([Issue(code, message, line=line, column=column, expected=expected)])


def sourceline(node: etree._Element) -> int | None:
    """The 1-based source line of `node` (lxml-stubs types it loosely)."""
    line: object = node.sourceline
    return line if isinstance(line, int) else None


def line_column(raw: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of byte `offset` in `raw`."""
    offset = max(0, min(offset, len(raw)))
    line = raw.count(b"\n", 0, offset) + 1
    start = raw.rfind(b"\n", 0, offset) + 1
    return line, len(raw[start:offset].decode("utf-8", errors="replace")) + 1


def check_size(raw: bytes, max_size: int) -> None:
    """R100 when `raw` is larger than `max_size` bytes."""
    if len(raw) > max_size:
        raise _fail("R100", f"message is {len(raw)} bytes, larger than the limit of {max_size} bytes",
                    expected=f"at most {max_size} bytes")


def _check_encoding(raw: bytes) -> tuple[int, int]:
    """R207 checks on the bytes; returns (start after a UTF-8 BOM, end of the XML declaration)."""
    if raw[:1] in _ODD_FIRST_BYTES or raw[1:2] == b"\x00":
        for bom, name in _OTHER_BOMS:
            if raw.startswith(bom):
                raise _fail("R207", f"message starts with a {name} byte order mark; messages must be UTF-8",
                            line=1, column=1, expected="UTF-8 without BOM or with a UTF-8 BOM")
        if raw.startswith((b"<\x00", b"\x00<")):
            raise _fail("R207", "message looks like UTF-16 without a byte order mark; messages must be UTF-8",
                        line=1, column=1, expected="UTF-8")
    if b"\x00" in raw:
        line, column = line_column(raw, raw.find(b"\x00"))
        raise _fail("R207", "message contains a NUL byte", line=line, column=column,
                    expected="UTF-8 text without NUL")
    start = 3 if raw.startswith(_UTF8_BOM) else 0
    if not raw.startswith(b"<?xml", start):
        return start, 0
    decl_end = raw.find(b"?>", start) + 2
    decl = raw[start:decl_end] if decl_end > 1 else b""
    enc = _DECL_ENCODING.search(decl) if b"encoding" in decl else None
    if enc is not None and enc.group(1).lower() not in _UTF8_NAMES:
        declared = enc.group(1).decode("ascii")
        what = (f"a UTF-8 byte order mark contradicts the declared encoding {declared!r}" if start
                else f"declared encoding {declared!r} is not accepted")
        raise _fail("R207", f"{what}; messages must be UTF-8", line=1, column=1, expected='encoding="UTF-8"')
    return start, max(decl_end, 0)


def _check_markup(raw: bytes) -> None:
    """R201/R202: no DTD and no entity but the predefined five, decided on the bytes."""
    pos = raw.find(b"<!DOCTYPE")
    if pos >= 0:
        line, column = line_column(raw, pos)
        raise _fail("R201", "a DOCTYPE (document type declaration) is not allowed", line=line,
                    column=column, expected="no DOCTYPE, DTD or entity declarations")
    pos = raw.find(b"<!ENTITY")
    if pos >= 0:
        line, column = line_column(raw, pos)
        raise _fail("R202", "an entity declaration is not allowed", line=line, column=column,
                    expected="no entity declarations")
    if b"&" in raw:
        match = _ENTITY_REF.search(raw)
        if match is not None:
            line, column = line_column(raw, match.start())
            raise _fail("R202", "a reference to an entity other than the five predefined ones is not allowed",
                        line=line, column=column,
                        expected="&lt; &gt; &amp; &quot; &apos; or a character reference")


def _syntax_failure(err: etree.XMLSyntaxError) -> ValidationFailed:
    msg = str(err.msg or "not well-formed")
    msg = re.sub(r", line \d+, column \d+$", "", msg).split(" Bytes:", 1)[0]
    line, column = err.position if err.position else (err.lineno, None)
    if "Excessive depth" in msg or ("depth" in msg and "exceeds" in msg):
        return _fail("R205", "elements are nested too deeply", line=line, column=column,
                     expected=f"at most {DEFAULT_MAX_DEPTH} levels")
    if "too long" in msg or "huge" in msg.lower() or "Resource limit" in msg:
        return _fail("R206", f"a text node is too large ({msg})", line=line, column=column,
                     expected="text nodes under the configured limit")
    if "encoding" in msg.lower() or "UTF-8" in msg:
        return _fail("R207", f"not valid UTF-8 ({msg})", line=line, column=column, expected="UTF-8")
    if "Entity" in msg or "entity" in msg:
        return _fail("R202", f"entity reference not allowed ({msg})", line=line, column=column)
    return _fail("R200", f"not well-formed XML: {msg}", line=line, column=column)


def _check_pis(root: etree._Element) -> None:
    for node in (*root.itersiblings(preceding=True), *root.itersiblings(), *root.iter(etree.PI)):
        if isinstance(node, etree._ProcessingInstruction):
            target = str(node.target)
            raise _fail("R203", f"processing instruction <?{target} …?> is not allowed",
                        line=sourceline(node), expected="no processing instructions")


def _check_xinclude(root: etree._Element) -> None:
    for ns in _XINCLUDE_NAMESPACES:
        for el in root.iter(f"{{{ns}}}*"):
            raise _fail("R204", "XInclude elements are not allowed (never processed)", line=sourceline(el),
                        expected="no XInclude")


def _check_schema_hints(root: etree._Element) -> None:
    for el in root.iter(etree.Element):
        for attr in _SCHEMA_HINTS:
            if el.get(attr) is not None:
                name = attr.rsplit("}", 1)[1]
                raise _fail("R208", f"xsi:{name} hints are not allowed (never followed)",
                            line=sourceline(el), expected="no schema location hints")


def _check_depth(root: etree._Element, max_depth: int) -> None:
    depth = 0
    for event, el in etree.iterwalk(root, events=("start", "end")):
        if event == "start":
            depth += 1
            if depth > max_depth:
                raise _fail("R205", f"elements are nested deeper than {max_depth} levels",
                            line=sourceline(el), expected=f"at most {max_depth} levels")
        else:
            depth -= 1


def _check_text(root: etree._Element, max_text: int) -> None:
    for el in root.iter():
        texts = [el.text, el.tail, *el.attrib.values()] if isinstance(el.tag, str) else [el.text, el.tail]
        for text in texts:
            if text is not None and len(text) * 4 > max_text and len(text.encode("utf-8")) > max_text:
                raise _fail("R206", f"a text node or attribute value is larger than {max_text} bytes",
                            line=sourceline(el), expected=f"at most {max_text} bytes")


def parse_xml(
    raw: bytes,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_text: int = DEFAULT_MAX_TEXT,
) -> etree._Element:
    """Parse `raw` safely and return the root element (elements carry `sourceline`).

    Raises bus.errors.ValidationFailed with one Issue (R100, R20x) on hostile or broken input.
    """
    check_size(raw, max_size)
    decl_end = _check_encoding(raw)[1]
    _check_markup(raw)
    try:
        root = etree.fromstring(raw, hardened_parser())
    except etree.XMLSyntaxError as err:
        raise _syntax_failure(err) from None
    if root is None:  # pragma: no cover - fromstring raises on empty input
        raise _fail("R200", "empty document")
    if raw.find(b"<?", decl_end) >= 0:
        _check_pis(root)
    # Both the XInclude and the XMLSchema-instance namespaces are W3C URIs; a character
    # reference could hide one from the byte screen, so any "&#" means a look at the tree.
    if b"w3.org/" in raw or b"&#" in raw:
        _check_xinclude(root)
        _check_schema_hints(root)
    if max_depth < DEFAULT_MAX_DEPTH and raw.count(b"<") > max_depth:
        _check_depth(root, max_depth)
    if len(raw) > max_text:
        _check_text(root, max_text)
    return root
