"""Render a kind's Avro schema (.avsc) from its field spec and the code lists.

Mapping: optional → ``["null", T]`` with default null; date → int/date; datetime →
long/timestamp-millis; enum → Avro enum with the code list's symbols; record → named record
(defined at first use, referenced by name afterwards); list → array. Each field carries
``doc`` (Japanese label — English description) and, as metadata Avro readers ignore,
``facets`` (the XSD facets) and ``personal``.
"""

from __future__ import annotations

import json
from typing import Any

from bus.catalog.codelists import CodeLists
from bus.catalog.spec import Field, KindSpec

__all__ = ["avro_schema", "render_avsc"]

_SCALAR: dict[str, Any] = {
    "string": "string",
    "int": "int",
    "boolean": "boolean",
    "date": {"type": "int", "logicalType": "date"},
    "datetime": {"type": "long", "logicalType": "timestamp-millis"},
}


def avro_schema(spec: KindSpec, codelists: CodeLists) -> dict[str, Any]:
    """The Avro schema of `spec` as a JSON-ready dict."""
    defined: set[str] = set()

    def record(name: str, label: str, description: str, fields: tuple[Field, ...]) -> dict[str, Any]:
        defined.add(name)
        return {"type": "record", "name": name, "doc": _doc(label, description),
                "fields": [field(f) for f in fields]}

    def type_of(f: Field) -> Any:
        if f.type == "record" and f.record:
            return f.record if f.record in defined else record(f.record, f.label_ja, "", f.children)
        if f.type == "enum" and f.codelist:
            if f.codelist in defined:
                return f.codelist
            defined.add(f.codelist)
            codes = codelists.get(f.codelist)
            return {"type": "enum", "name": f.codelist, "doc": _doc(codes.label_ja, codes.description),
                    "symbols": list(codes.symbols)}
        if f.type == "list" and f.item is not None:
            return {"type": "array", "items": type_of(f.item)}
        return _SCALAR[f.type]

    def field(f: Field) -> dict[str, Any]:
        out: dict[str, Any] = {"name": f.name, "doc": _doc(f.label_ja, f.description)}
        t = type_of(f)
        if f.optional:
            out["type"] = ["null", t]
            out["default"] = None
        else:
            out["type"] = t
        facets = f.item.facets if f.type == "list" and f.item is not None else f.facets
        if facets:
            out["facets"] = dict(facets)
        if f.personal:
            out["personal"] = True
        return out

    top = record(spec.record, spec.label_ja, spec.description, spec.fields)
    return {"type": "record", "name": top["name"], "namespace": spec.avro_namespace, "doc": top["doc"],
            "fields": top["fields"]}


def render_avsc(spec: KindSpec, codelists: CodeLists) -> bytes:
    """The .avsc file of `spec`: indented JSON, UTF-8 (Japanese unescaped), deterministic."""
    return (json.dumps(avro_schema(spec, codelists), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _doc(label_ja: str, description: str) -> str:
    if label_ja and description:
        return f"{label_ja} — {description}"
    return label_ja or description
