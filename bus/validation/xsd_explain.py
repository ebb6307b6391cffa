"""`renkei validate --explain`: what the XSD itself says about each schema error, for the vendor
fixing a file — the schema's own path to the rule broken and the content model it expects.

The validator (lxml/libxml2, bus/validation/validator.py) decides and says what is wrong in our
words, fast; this asks xmlschema, which knows the schema as components (elements, groups,
facets) rather than as a log line, only when `--explain` is given. The file is read with
`defuse="always"` (no entities, no DTD, no network: defusedxml's rules), as hostile as any input.
A value of a personal field never appears: quoted values of such a path are elided, and long
digit runs are masked everywhere (bus.logs.scrub).
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import xmlschema

from bus.catalog import Catalog
from bus.errors import ConfigError
from bus.logs import scrub
from bus.masking import is_personal

__all__ = ["Explanation", "explain"]

#: explanations per file at most (the first errors matter; the rest usually follow from them)
MAX_EXPLAINED = 20
_CLARK = re.compile(r"\{[^{}\s]*:[^{}\s]*\}")  # {namespace-uri}name → name; keeps {4} quantifiers
_QUOTED = re.compile(r"(?<![A-Za-z])'[^']*'")


@dataclass(frozen=True, slots=True)
class Explanation:
    path: str  # where in the file (the instance path)
    schema_path: str  # where in the XSD: file, then component by component
    expected: str  # what the schema wants there: the content model, the pattern, the codes
    reason: str  # xmlschema's own words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def explain(raw: bytes, catalog: Catalog) -> list[Explanation]:
    """The schema errors of the XML message `raw`, explained from its kind's XSD (none when it
    is not a message of a catalog kind, or not XML xmlschema can read safely)."""
    try:
        resource = xmlschema.XMLResource(io.BytesIO(raw), defuse="always")
        tag = resource.root.tag
        ks = catalog.by_namespace(tag[1:tag.index("}")] if tag.startswith("{") else "")
    except (xmlschema.XMLResourceError, ConfigError, SyntaxError, ValueError):
        return []
    schema = _schema(ks.xsd_path)
    found = []
    for error in schema.iter_errors(resource):
        path = _CLARK.sub("", error.path or "/")
        reason = _CLARK.sub("", str(error.reason or ""))
        if is_personal(path):
            reason = _QUOTED.sub("'…'", reason)
        declared = _declared(schema, path)
        where = _component_path(error.validator)
        if declared is not None and "element " not in where:  # a named type's facet: say whose it is
            where = f"{_component_path(declared)} / {where}"
        found.append(Explanation(path, f"{ks.xsd_path.name}: {where}", _expected(error, declared),
                                 scrub(reason)))
        if len(found) >= MAX_EXPLAINED:
            break
    return found


@functools.lru_cache(maxsize=32)
def _schema(path: Path) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(path), defuse="always")


def _component_path(component: Any) -> str:
    """`complexType Address / sequence / element postal_code / restriction of xs:string / pattern`."""
    parts: list[str] = []
    node = component
    while node is not None:
        parts.append(_label(node))
        node = getattr(node, "parent", None)
    return " / ".join(p for p in reversed(parts) if p)


def _label(node: Any) -> str:
    kind = type(node).__name__
    name = getattr(node, "local_name", None)
    if kind == "XsdElement":
        return f"element {name}"
    if kind == "XsdComplexType":
        return f"complexType {name}" if name else ""
    if kind == "XsdGroup":
        return str(node.model)
    if kind in ("XsdAtomicRestriction", "XsdAtomicBuiltin"):
        base = getattr(node, "base_type", None) or getattr(node, "primitive_type", None)
        return f"restriction of {getattr(base, 'prefixed_name', None) or getattr(base, 'name', '')}".strip()
    if kind.endswith("Facets") or kind.endswith("Facet"):
        return kind.removeprefix("Xsd").removesuffix("Facets").removesuffix("Facet").lower() + " facet"
    return f"{kind.removeprefix('Xsd')} {name}" if name else kind.removeprefix("Xsd")


def _declared(schema: xmlschema.XMLSchema, path: str) -> Any:
    """The XSD element declared for the instance `path`, or None."""
    try:
        return schema.find(path, namespaces={"": schema.target_namespace})
    except (KeyError, ValueError, SyntaxError, xmlschema.XMLSchemaException):
        return None


def _expected(error: Any, declared: Any) -> str:
    validator = error.validator
    kind = type(validator).__name__
    if kind == "XsdGroup":
        model = ", ".join(f"{e.local_name}{_occurs(e.min_occurs, e.max_occurs)}" for e in validator.iter_elements())
        wanted = getattr(error, "expected", None) or []
        here = ", ".join(e.local_name for e in wanted if getattr(e, "local_name", None))
        return f"{validator.model}({model})" + (f"; here: {here}" if here else "")
    if kind == "XsdPatternFacets":
        return "pattern " + " | ".join(validator.regexps)
    if kind == "XsdEnumerationFacets":
        return "one of: " + ", ".join(map(str, validator.enumeration))
    type_ = getattr(declared, "type", None) or validator
    while type_ is not None and not str(getattr(type_, "prefixed_name", None) or "").startswith("xs:"):
        type_ = getattr(type_, "base_type", None)  # the built-in type it restricts (xs:long, not xs:decimal)
    return f"a value of {getattr(type_, 'prefixed_name', None) or 'its type'}"


def _occurs(low: int, high: int | None) -> str:
    return {(1, 1): "", (0, 1): "?", (0, None): "*", (1, None): "+"}.get((low, high), f"{{{low},{high or ''}}}")
