"""Turning a failed validation into words (bus/validation/validator.py calls it only for a
message that failed): per libxml2 error or Avro facet violation, an Issue with the path, the
line and column, the masked value and what was expected, in the catalog's own terms."""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from bus.catalog import KindSchema
from bus.masking import is_personal, mask_value
from bus.validation.chargate import Personal
from bus.validation.issues import Issue
from bus.validation.locate import column_of
from bus.validation.safe_xml import sourceline

__all__ = ["MAX_XSD_ISSUES", "facet_issue", "xsd_issues"]


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


def facet_issue(root: str, record: dict[str, Any], personal: Personal, path: str, rule: str,
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
