"""Safe XML parsing: what passes, what is refused, and with which code, line and column."""

from __future__ import annotations

import pytest

from bus.errors import ValidationFailed
from bus.validation.safe_xml import line_column, parse_xml

NS = b"urn:renkei:schema:jumin.idou:1"


def doc(body: bytes, decl: bytes = b'<?xml version="1.0" encoding="UTF-8"?>\n') -> bytes:
    return decl + b'<ResidentChange xmlns="' + NS + b'">\n' + body + b"\n</ResidentChange>\n"


def rejected(raw: bytes, **limits: int) -> list[tuple[str, int | None, int | None]]:
    with pytest.raises(ValidationFailed) as info:
        parse_xml(raw, **limits)
    return [(i.code, i.line, i.column) for i in info.value.issues]


def test_a_plain_document_parses_with_source_lines() -> None:
    """The root element comes back and elements know their line."""
    root = parse_xml(doc(b"  <municipality_code>131016</municipality_code>"))
    assert root.tag == "{urn:renkei:schema:jumin.idou:1}ResidentChange"
    assert root[0].sourceline == 3


@pytest.mark.parametrize(
    "raw",
    [
        doc(b"<town>&lt;&gt;&amp;&quot;&apos;</town>"),
        doc(b"<town>&#x3042;&#12354;</town>"),
        doc(b"<town><![CDATA[a < b]]></town><!-- a comment -->"),
        b"\xef\xbb\xbf" + doc(b"<town>x</town>"),
        doc(b"<town>x</town>", decl=b"<?xml version='1.0' encoding='utf-8'?>\n"),
        doc(b"<town>x</town>", decl=b""),
        doc("<town>千代田</town>".encode()),
    ],
    ids=["predefined-entities", "char-refs", "cdata-comment", "utf8-bom", "lowercase-utf8", "no-decl",
         "japanese"],
)
def test_ordinary_xml_passes(raw: bytes) -> None:
    """Predefined entities, character references, CDATA, comments, a UTF-8 BOM are all fine."""
    parse_xml(raw)


def test_the_size_cap_comes_first_and_is_configurable() -> None:
    """R100 before anything else: even a DOCTYPE in an oversized message is reported as R100."""
    raw = b"<!DOCTYPE x>" + doc(b"<town>" + b"a" * 2000 + b"</town>")
    assert rejected(raw, max_size=1000)[0][0] == "R100"
    assert rejected(raw)[0][0] == "R201"


def test_doctype_is_refused_with_its_position() -> None:
    """R201 points at the DOCTYPE's line and column."""
    raw = b'<?xml version="1.0"?>\n  <!DOCTYPE r []>\n<r/>'
    assert rejected(raw) == [("R201", 2, 3)]


def test_entity_declaration_and_unknown_entity_reference_are_refused() -> None:
    """R202 for <!ENTITY outside a DOCTYPE and for any non-predefined entity reference."""
    assert rejected(doc(b"<!ENTITY x 'y'>"))[0][0] == "R202"
    assert rejected(doc(b"<town>&nbsp;</town>")) == [("R202", 3, 7)]
    assert rejected(doc("<town>&日本;</town>".encode()))[0][0] == "R202"  # found by libxml2 itself


@pytest.mark.parametrize(
    "raw",
    [
        doc(b"<town>x</town>", decl=b'<?xml version="1.0"?>\n<?evil data?>\n'),
        doc(b"<town><?php echo 1; ?></town>"),
        doc(b"<town>x</town>") + b"<?after?>",
    ],
    ids=["before-root", "inside", "after-root"],
)
def test_processing_instructions_are_refused_anywhere(raw: bytes) -> None:
    """R203 for a PI before, inside or after the root element."""
    assert rejected(raw)[0][0] == "R203"


def test_pi_like_text_in_a_comment_is_not_a_processing_instruction() -> None:
    """The byte screen only triggers a closer look; a '<?' inside a comment passes."""
    parse_xml(doc(b"<!-- see <?this?> --><town>x</town>"))


@pytest.mark.parametrize("ns", [b"http://www.w3.org/2001/XInclude", b"http://www.w3.org/2003/XInclude"])
def test_xinclude_elements_are_refused(ns: bytes) -> None:
    """R204 for an XInclude element of either namespace; it is never processed."""
    assert rejected(doc(b'<xi:include xmlns:xi="' + ns + b'" href="/etc/passwd"/>'))[0][0] == "R204"


def test_namespaces_hidden_by_character_references_are_still_found() -> None:
    """An XInclude or XMLSchema-instance namespace spelled with character references is caught."""
    xi = doc(b'<xi:include xmlns:xi="http://www.w3&#x2e;org/2001/XInclude" href="x"/>')
    assert rejected(xi)[0][0] == "R204"
    xsi = doc(b'<town xmlns:s="http://www&#46;w3&#46;org/2001/XMLSchema-instance" s:schemaLocation="a b"/>')
    assert rejected(xsi)[0][0] == "R208"


def test_nesting_is_limited() -> None:
    """R205 beyond 256 levels (libxml2's own limit) and beyond a configured lower limit."""
    assert rejected(doc(b"<a>" * 300 + b"</a>" * 300))[0][0] == "R205"
    parse_xml(doc(b"<a>" * 20 + b"</a>" * 20), max_depth=32)
    assert rejected(doc(b"<a>" * 40 + b"</a>" * 40), max_depth=32)[0][0] == "R205"


def test_text_nodes_are_limited_in_bytes() -> None:
    """R206 when one text node or attribute value is over max_text UTF-8 bytes."""
    parse_xml(doc("<town>{}</town>".format("町" * 300).encode()), max_text=1000)
    assert rejected(doc("<town>{}</town>".format("町" * 400).encode()), max_text=1000)[0][0] == "R206"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b"\xff\xfe" + doc(b"").decode().encode("utf-16-le"), (1, 1)),
        (b"\xfe\xff" + doc(b"").decode().encode("utf-16-be"), (1, 1)),
        (doc(b"").decode().encode("utf-16-le"), (1, 1)),
        (doc(b"<town>a\x00b</town>"), (3, 8)),
        (doc(b"<town>x</town>", decl=b'<?xml version="1.0" encoding="Shift_JIS"?>\n'), (1, 1)),
        (b"\xef\xbb\xbf" + doc(b"", decl=b'<?xml version="1.0" encoding="ISO-8859-1"?>\n'), (1, 1)),
        (doc(b"<town>caf\xe9</town>"), (3, 10)),
    ],
    ids=["utf16le-bom", "utf16be-bom", "utf16-no-bom", "nul", "declared-sjis", "bom-vs-declared", "latin1"],
)
def test_encoding_problems_are_r207_with_a_position(raw: bytes, where: tuple[int, int]) -> None:
    """UTF-16, NUL bytes, non-UTF-8 declarations and invalid UTF-8 are R207, located."""
    code, line, column = rejected(raw)[0]
    assert code == "R207"
    assert line == where[0]
    assert column is None or column == where[1]


@pytest.mark.parametrize(
    "attr", [b'xsi:schemaLocation="urn:x http://127.0.0.1:9/x.xsd"', b'xsi:noNamespaceSchemaLocation="x.xsd"']
)
def test_schema_location_hints_are_refused(attr: bytes) -> None:
    """R208 for either schema location hint, on any element."""
    raw = doc(b'<town xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ' + attr + b">x</town>")
    assert rejected(raw) == [("R208", 3, None)]


def test_not_well_formed_is_r200_with_line_and_column() -> None:
    """R200 carries libxml2's position."""
    code, line, column = rejected(doc(b"<town>x</towm>"))[0]
    assert (code, line) == ("R200", 3)
    assert column is not None


def test_line_column_counts_characters_not_bytes() -> None:
    """Columns are characters: a Japanese character before the offset counts once."""
    raw = "a\nあいz".encode()
    assert line_column(raw, raw.index(b"z")) == (2, 3)
