"""Validate one message: bytes in, a typed record out, or every problem as Issues (DESIGN §3).

    validated = validate(raw, content_type="application/xml", catalog=catalog)
    validated.kind_schema.kind, validated.record["change"]["reason"]

XML: size cap → safe parse → kind from the root namespace (R220) → XSD (R300, one Issue per
libxml2 error with path, line, column, masked value and what was expected) → record → rules →
character gate. Avro: the kind is required → bounded decode → facets (R301, R420) → rules →
character gate. Parse and schema failures stop at once; rule and character issues are all
collected. Nothing personal appears in plain text in any Issue (bus.masking).

The hot path does no path bookkeeping: paths, columns and messages are worked out only
for a message that failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from lxml import etree

from bus.catalog import Catalog, KindSchema
from bus.errors import ConfigError, ValidationFailed
from bus.masking import is_personal, mask_value
from bus.validation.chargate import Personal, check_characters
from bus.validation.checkdigits import is_valid_municipality_code
from bus.validation.issues import Issue
from bus.validation.locate import column_of, located
from bus.validation.rules import rules_for
from bus.validation.safe_avro import decode_avro
from bus.validation.safe_xml import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    DEFAULT_MAX_TEXT,
    parse_xml,
    sourceline,
)

__all__ = ["AVRO", "XML", "Limits", "Validated", "validate"]

XML = "application/xml"
AVRO = "application/avro"
_XML_TYPES = frozenset({XML, "text/xml"})
_AVRO_TYPES = frozenset({AVRO, "avro/binary"})


@dataclass(frozen=True, slots=True)
class Limits:
    """Input limits. `max_bytes` bytes per message (R100); `max_depth` element levels (R205,
    at most 256: libxml2's own limit); `max_text` UTF-8 bytes per text node or attribute (R206)."""

    max_bytes: int = DEFAULT_MAX_SIZE
    max_depth: int = DEFAULT_MAX_DEPTH
    max_text: int = DEFAULT_MAX_TEXT


class Validated(NamedTuple):
    """A message that passed: its kind and the record (a dict shaped like the Avro record)."""

    kind_schema: KindSchema
    record: dict[str, Any]


_DEFAULT_LIMITS = Limits()


def validate(
    raw: bytes,
    *,
    content_type: str,
    kind: str | None = None,
    catalog: Catalog,
    limits: Limits = _DEFAULT_LIMITS,
    version: int | None = None,
) -> Validated:
    """Validate `raw`; raise bus.errors.ValidationFailed with every Issue found.

    `kind` (and `version`) must match an XML message's namespace when given; Avro needs
    `kind` (the body names no schema), and takes the latest version unless `version` is given.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    root: etree._Element | None = None
    if media in _XML_TYPES:
        ks, record, root = _xml(raw, kind, version, catalog, limits)
    elif media in _AVRO_TYPES:
        ks, record = _avro(raw, kind, version, catalog, limits)
    else:
        raise _fail("R220", f"unknown content type {content_type!r}", expected=f"{XML} or {AVRO}")
    rules = rules_for(ks, catalog.codelists)
    issues = rules.check(record)
    issues += check_characters(record, root=ks.root_element, personal=rules.personal)
    if issues:
        if root is not None:  # XML: each rule issue at the line:column of its element, as schema errors
            issues = located(issues, root, raw)
        raise ValidationFailed(issues, municipality=_municipality(record.get(MUNICIPALITY)))
    return Validated(ks, record)


#: the field (and XML element, a child of the root) naming the message's municipality
MUNICIPALITY = "municipality_code"


def _municipality(value: Any) -> str | None:
    """`value` if it is a 地方公共団体コード, check digit and all: a mistyped code names no
    municipality (its source hears R402, not that it may not submit for some other one)."""
    if isinstance(value, str) and is_valid_municipality_code(value.strip()):
        return value.strip()
    return None


def _municipality_in(root: etree._Element, namespace: str) -> str | None:
    element = root.find(f"{{{namespace}}}{MUNICIPALITY}")
    return _municipality(element.text) if element is not None else None


def _fail(code: str, message: str, **extra: Any) -> ValidationFailed:
    return ValidationFailed([Issue(code, message, **extra)])


def _kind(catalog: Catalog, kind: str, version: int | None) -> KindSchema:
    try:
        return catalog.get(kind, version)
    except ConfigError:
        known = ", ".join(catalog.kinds())
        raise _fail("R220", f"unknown kind {kind!r}" + (f" version {version}" if version else ""),
                    expected=f"one of {known}") from None


def _xml(raw: bytes, kind: str | None, version: int | None, catalog: Catalog,
         limits: Limits) -> tuple[KindSchema, dict[str, Any], etree._Element]:
    root = parse_xml(raw, max_size=limits.max_bytes, max_depth=limits.max_depth, max_text=limits.max_text)
    tag = root.tag
    namespace = tag[1 : tag.index("}")] if isinstance(tag, str) and tag.startswith("{") else ""
    try:
        ks = catalog.by_namespace(namespace)
    except ConfigError:
        raise _fail("R220", f"unknown message kind: root element namespace {namespace[:200]!r}",
                    path="/" + etree.QName(root).localname, line=sourceline(root),
                    expected="urn:renkei:schema:<kind>:<version> of a catalog kind") from None
    if (kind is not None and ks.kind != kind) or (version is not None and ks.version != version):
        wanted = kind or ks.kind
        raise _fail("R220", f"message is {ks.kind} v{ks.version}, not the expected kind",
                    path="/" + etree.QName(root).localname, line=sourceline(root),
                    expected=f"{wanted}" + (f" v{version}" if version else ""))
    try:
        ks.xml_schema.assertValid(root)
    except etree.DocumentInvalid as err:
        personal = rules_for(ks, catalog.codelists).personal
        raise ValidationFailed(xsd_issues(err.error_log, root, raw, ks, personal),
                               municipality=_municipality_in(root, namespace)) from None
    try:
        return ks, ks.from_xml(root), root
    except (ValueError, TypeError):  # schema-valid but unreadable: a catalog bug, still a rejection
        raise ValidationFailed([Issue("R300", "message passed the XSD but cannot be read as a record",
                                      path="/" + etree.QName(root).localname)],
                               municipality=_municipality_in(root, namespace)) from None


def _avro(raw: bytes, kind: str | None, version: int | None, catalog: Catalog,
          limits: Limits) -> tuple[KindSchema, dict[str, Any]]:
    if kind is None:
        raise _fail("R220", "an Avro message needs its kind (the body names no schema)",
                    expected="the kind header, e.g. jumin.idou")
    ks = _kind(catalog, kind, version)
    record = decode_avro(raw, ks.avro_schema, max_size=limits.max_bytes)
    violations = ks.check_facets(record)
    if violations:
        root = ks.root_element
        personal = rules_for(ks, catalog.codelists).personal
        raise ValidationFailed([_facet_issue(root, record, personal, *v) for v in violations],
                               municipality=_municipality(record.get(MUNICIPALITY)))
    return ks, record


# --- turning failures into words (only for messages that failed) ------------------------


def _value_at(record: Any, path: str) -> Any:
    value = record
    for part in path.split("/"):
        name, _, index = part.partition("[")
        value = value.get(name) if isinstance(value, dict) else None
        if index and isinstance(value, list):
            i = int(index.rstrip("]"))
            value = value[i] if i < len(value) else None
    return value


def _shown(path: str, value: Any, personal: Personal) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return None
    return mask_value(value) if personal(path) else str(value)


_FACET_WORDS = {
    "pattern": "value does not match the pattern",
    "length": "value has the wrong length",
    "minLength": "value is too short",
    "maxLength": "value is too long",
    "minInclusive": "value is too small",
    "maxInclusive": "value is too large",
    "required": "a required field is missing",
    "type": "value has the wrong type",
    "enumeration": "value is not in the code list",
}
_FACET_EXPECTED = {
    "pattern": "pattern {}",
    "length": "exactly {} characters",
    "minLength": "at least {} characters",
    "maxLength": "at most {} characters",
    "minInclusive": "at least {}",
    "maxInclusive": "at most {}",
    "enumeration": "a {} code",
}


def _facet_issue(root: str, record: dict[str, Any], personal: Personal, path: str, rule: str,
                 expected: str) -> Issue:
    full = f"/{root}/{path}"
    code = "R420" if rule == "enumeration" else "R301"
    return Issue(code, _FACET_WORDS.get(rule, f"{rule} facet violated"), path=full,
                 value=_shown(full, _value_at(record, path), personal),
                 expected=_FACET_EXPECTED.get(rule, "{}").format(expected))


#: schema errors reported per message; the rest are counted
MAX_XSD_ISSUES = 100
_PREFIX = re.compile(r"^Element '[^']*'(?:, attribute '([^']*)')?: ")
_CLARK = re.compile(r"\{[^{}\s]*:[^{}\s]*\}")  # {namespace-uri}name → name; keeps {4} quantifiers
_TYPE_WORDS = {
    "xs:date": "a date YYYY-MM-DD",
    "xs:dateTime": "a date-time YYYY-MM-DDThh:mm:ss+09:00",
    "xs:boolean": "true or false",
    "xs:int": "an integer",
    "xs:integer": "an integer",
    "xs:long": "an integer",
}
# (pattern over the message after the "Element '…': " prefix, message, expected, shows the value?)
_XSD_MESSAGES: tuple[tuple[re.Pattern[str], str, str, bool], ...] = tuple(
    (re.compile(p, re.S), m, e, v)
    for p, m, e, v in (
        (r"\[facet 'enumeration'\] The value .* is not an element of the set \{(?P<x>.*)\}\.$",
         "value is not one of the allowed codes", "one of: {codes}", True),
        (r"\[facet 'pattern'\] The value .* is not accepted by the pattern '(?P<x>.*)'\.$",
         "value does not match the pattern", "pattern {x}", True),
        (r"\[facet 'length'\] The value .*has a length of '(?P<n>\d+)'; .* length of '(?P<x>\d+)'\.$",
         "value has {n} characters", "exactly {x} characters", True),
        (r"\[facet 'minLength'\] The value .*has a length of '(?P<n>\d+)'; .* length of '(?P<x>\d+)'\.$",
         "value is too short ({n} characters)", "at least {x} characters", True),
        (r"\[facet 'maxLength'\] The value .*has a length of '(?P<n>\d+)'; .* length of '(?P<x>\d+)'\.$",
         "value is too long ({n} characters)", "at most {x} characters", True),
        (r"\[facet 'min(?:In|Ex)clusive'\] The value .* is less than .*\('(?P<x>.*)'\)\.$",
         "value is too small", "at least {x}", True),
        (r"\[facet 'max(?:In|Ex)clusive'\] The value .* is greater than .*\('(?P<x>.*)'\)\.$",
         "value is too large", "at most {x}", True),
        (r".* is not a valid value of the (?:local )?(?:atomic|list|union) type(?: '(?P<t>[^']*)')?\.$",
         "value is not valid for its type", "{t}", True),
        (r"This element is not expected\. Expected is (?:one of )?\( (?P<x>.*) \)\.$",
         "element is not expected here (one before it is missing, misspelt or out of order)", "{x}", False),
        (r"This element is not expected\.$", "element is not expected here", "no element here", False),
        (r"Missing child element\(s\)\. Expected is (?:one of )?\( (?P<x>.*) \)\.$",
         "a required element is missing", "{x}", False),
        (r"Character content other than whitespace is not allowed.*$",
         "text is not allowed here (element-only content)", "child elements only", False),
        (r"Element content is not allowed.*$", "child elements are not allowed here", "a simple value",
         False),
        (r"The attribute '(?P<a>[^']*)' is not allowed\.$", "attribute {a} is not allowed", "no attributes",
         False),
        (r"No matching global declaration available for the validation root\.$",
         "root element is not the kind's root element", "{root}", False),
    )
)


def _readable_path(el: etree._Element) -> str:
    parts: list[str] = []
    node: etree._Element | None = el
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


_HALFWIDTH_KANA = re.compile("[\uff61-\uff9f]")
_SPEC_WORDS = {
    "int": "an integer",
    "boolean": "true or false",
    "date": "a date YYYY-MM-DD",
    "datetime": "a date-time with time zone, e.g. 2025-04-01T09:00:00+09:00",
    "string": "text",
}


def _field_words(ks: KindSchema, path: str, *, only_dates: bool = False) -> str | None:
    """What the field at a readable path (``/Root/a/b``) holds, from the kind's field spec."""
    wanted = re.sub(r"\[\d+\]", "", path).split("/")[2:]
    fields = ks.fields
    found = None
    for part in wanted:
        found = next((f for f in fields if f.name == part), None)
        if found is None:
            return "a valid value"
        if found.type == "list" and found.item is not None:
            fields = (found.item,)
            found = found.item
        else:
            fields = found.children
    if found is None:
        return "a valid value"
    if only_dates:
        return _SPEC_WORDS[found.type] if found.type in ("date", "datetime") else None
    words = _SPEC_WORDS.get(found.type, found.type)
    low, high = found.facets.get("minInclusive"), found.facets.get("maxInclusive")
    if low is not None:
        words += f" ≥ {low}"
    if high is not None:
        words += f" ≤ {high}"
    return words


def _words(message: str, ks: KindSchema, path: str = "") -> tuple[str, str | None, bool]:
    body = _PREFIX.sub("", message.strip())
    for pattern, words, expected, has_value in _XSD_MESSAGES:
        match = pattern.match(body)
        if match is not None:
            groups = {k: _CLARK.sub("", v or "") for k, v in match.groupdict().items()}
            groups["root"] = ks.root_element
            if "t" in groups:
                groups["t"] = _TYPE_WORDS.get(groups["t"]) or _field_words(ks, path) or groups["t"]
            if "pattern" in body[:20]:
                dates = _field_words(ks, path, only_dates=True)
                if dates:
                    return "value is not in the date format", dates, has_value
            if "x" in groups:
                groups["codes"] = groups["x"].replace("'", "")
            return words.format(**groups), expected.format(**groups), has_value
    # An unknown libxml2 message: keep its words, never the quoted values in it.
    return re.sub(r"'[^']*'", "'…'", _CLARK.sub("", body)), None, False


def xsd_issues(log: Any, root: etree._Element, raw: bytes, ks: KindSchema,
               personal: Personal = is_personal) -> list[Issue]:
    """One R300 Issue per libxml2 schema error, in words for the vendor (values masked)."""
    tree = root.getroottree()
    lines = raw.split(b"\n")
    issues: list[Issue] = []
    entries = list(log)
    if len(entries) > MAX_XSD_ISSUES:
        entries = entries[:MAX_XSD_ISSUES]
    for entry in entries:
        el: etree._Element | None = None
        if entry.path:
            try:
                found = tree.xpath(entry.path)
            except etree.XPathError:
                found = []
            if isinstance(found, list) and found and isinstance(found[0], etree._Element):
                el = found[0]
        path = _readable_path(el) if el is not None else ""
        message, expected, has_value = _words(str(entry.message), ks, path)
        value = None
        if has_value and el is not None and el.text is not None:
            value = mask_value(el.text) if personal(path) else el.text
            if path.endswith("_kana") and expected and expected.startswith("pattern"):
                expected = "full-width katakana (全角カタカナ)"
                if _HALFWIDTH_KANA.search(el.text):
                    message += ": half-width katakana (半角カナ) must be converted to full-width"
        line = (sourceline(el) if el is not None else None) or entry.line or None
        column = column_of(el, root, lines) if el is not None else None
        issues.append(Issue("R300", message, path=path, line=line, column=column, value=value,
                            expected=expected))
    more = len(log) - len(entries)
    if more > 0:
        issues.append(Issue("R300", f"{more} more schema errors not shown; fix the ones above first"))
    return issues or [Issue("R300", "message does not match the XSD")]
