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

from dataclasses import dataclass
from typing import Any, NamedTuple

from lxml import etree

from bus.catalog import Catalog, KindSchema
from bus.errors import ConfigError, ValidationFailed
from bus.validation.chargate import check_characters
from bus.validation.checkdigits import is_valid_municipality_code
from bus.validation.explain import MAX_XSD_ISSUES, facet_issue, xsd_issues
from bus.validation.issues import Issue
from bus.validation.locate import located
from bus.validation.rules import rules_for
from bus.validation.safe_avro import decode_avro
from bus.validation.safe_xml import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    DEFAULT_MAX_TEXT,
    parse_xml,
    sourceline,
)

__all__ = ["AVRO", "MAX_XSD_ISSUES", "XML", "Limits", "Validated", "validate"]

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
    issues += check_characters(record, root=ks.root_element, personal=rules.personal, charsets=catalog.charsets)
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
        raise ValidationFailed([facet_issue(root, record, personal, *v) for v in violations],
                               municipality=_municipality(record.get(MUNICIPALITY)))
    return ks, record
