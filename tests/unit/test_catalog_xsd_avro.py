"""The catalog's XSD and Avro schema of every kind describe the same message: the same fields
in the same order, each as optional, repeated and of the same type in both — read back from
the generated files themselves (the XSD by xmlschema, the .avsc as JSON), not from fields.yaml
that generated them, so a generator bug in either is caught."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from bus.catalog import Catalog, KindSchema

CATALOG = Catalog.load()
KINDS = [CATALOG.get(kind, version) for kind in CATALOG.kinds() for version in CATALOG.versions(kind)]

#: a leaf's type, as each schema language spells it
_XSD_LEAVES = {"xs:string": "text", "xs:int": "integer", "xs:long": "integer", "xs:integer": "integer",
               "xs:boolean": "boolean", "xs:date": "date", "xs:dateTime": "datetime", "xs:decimal": "decimal",
               "xs:double": "double"}
_AVRO_LEAVES = {("string", None): "text", ("int", None): "integer", ("long", None): "integer",
                ("boolean", None): "boolean", ("int", "date"): "date", ("long", "timestamp-millis"): "datetime",
                ("long", "timestamp-micros"): "datetime", ("double", None): "double", ("enum", None): "text"}

Shape = list[tuple[str, bool, bool, Any]]  # (name, optional, repeated, leaf type or the record's shape)


def _avro(record: dict[str, Any], names: dict[str, Any]) -> Shape:
    names[record["name"]] = record
    shape: Shape = []
    for field in record["fields"]:
        kind: Any = field["type"]
        optional = isinstance(kind, list) and "null" in kind
        if isinstance(kind, list):
            [kind] = [k for k in kind if k != "null"]
        repeated = isinstance(kind, dict) and kind.get("type") == "array"
        if repeated:
            kind = kind["items"]
        shape.append((field["name"], optional, repeated, _avro_type(kind, names)))
    return shape


def _avro_type(kind: Any, names: dict[str, Any]) -> Any:
    if isinstance(kind, str) and kind in names:  # a named record or enum used again
        kind = names[kind]
    if isinstance(kind, dict) and kind.get("type") == "enum":
        names[kind["name"]] = kind
    if isinstance(kind, dict) and kind.get("type") == "record":
        return _avro(kind, names)
    if isinstance(kind, dict):
        return _AVRO_LEAVES.get((kind["type"], kind.get("logicalType")), f"avro:{kind}")
    return _AVRO_LEAVES.get((kind, None), f"avro:{kind}")


def _xsd(element: Any) -> Shape:
    shape: Shape = []
    for child in element.type.content.iter_elements():
        optional, repeated, target = child.min_occurs == 0, False, child
        items = list(child.type.content.iter_elements()) if child.type.has_complex_content() else []
        if len(items) == 1 and items[0].local_name == "item" and items[0].max_occurs is None:
            repeated, target = True, items[0]  # a list: <items><item>…</item>…</items>
        shape.append((child.local_name, optional, repeated, _xsd_type(target)))
    return shape


def _xsd_type(element: Any) -> Any:
    if element.type.has_complex_content():
        return _xsd(element)
    kind = element.type
    while kind is not None and not str(kind.prefixed_name or "").startswith("xs:"):
        kind = kind.base_type
    return _XSD_LEAVES.get(kind.prefixed_name if kind is not None else "", f"xsd:{kind}")


@pytest.mark.parametrize("ks", KINDS, ids=lambda ks: f"{ks.kind}-v{ks.version}")
def test_the_xsd_and_the_avro_schema_of_a_kind_describe_the_same_message(ks: KindSchema) -> None:
    schema = xmlschema.XMLSchema(str(ks.xsd_path), defuse="always")
    root = schema.elements[ks.root_element]
    avro = json.loads(ks.avsc_path.read_text(encoding="utf-8"))
    assert _xsd(root) == _avro(avro, {})


def test_the_comparison_sees_a_difference() -> None:
    """A field made optional on one side only is a difference (the check can fail)."""
    ks = CATALOG.get("jumin.idou")
    avro = json.loads(ks.avsc_path.read_text(encoding="utf-8"))
    avro["fields"][0]["type"] = ["null", avro["fields"][0]["type"]]
    schema = xmlschema.XMLSchema(str(ks.xsd_path), defuse="always")
    assert _xsd(schema.elements[ks.root_element]) != _avro(avro, {})


def _xsd_paths(element: Any, prefix: str = "") -> list[tuple[str, bool]]:
    """(path as docs/schemas.md writes it, optional) of every field the XSD declares."""
    found = []
    for child in element.type.content.iter_elements():
        path, inner = f"{prefix}{child.local_name}", child
        if child.type.has_complex_content():
            items = list(child.type.content.iter_elements())
            if len(items) == 1 and items[0].local_name == "item" and items[0].max_occurs is None:
                path, inner = f"{path}[]", items[0]  # a list: <items><item>…</item>…</items>
        found.append((path, child.min_occurs == 0))
        if inner.type.has_complex_content():
            found += _xsd_paths(inner, f"{path}/")
    return found


@pytest.mark.parametrize("ks", KINDS, ids=lambda ks: f"{ks.kind}-v{ks.version}")
def test_the_schema_docs_list_every_field_the_xsd_declares_with_its_optionality(ks: KindSchema) -> None:
    """docs/schemas.md is rendered from fields.yaml (bus/catalog/docs.py), like the XSD: read
    back, the two agree on every field and whether it may be left out."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "schemas.md").read_text(encoding="utf-8")
    section = docs.split(f"### {ks.kind} v{ks.version} ", 1)[1].split("\n### ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`"): line.split("|")[3].strip()
            for line in section.splitlines() if line.startswith("| `")}
    schema = xmlschema.XMLSchema(str(ks.xsd_path), defuse="always")
    declared = _xsd_paths(schema.elements[ks.root_element])
    assert [p for p, _ in declared if p not in rows] == []
    assert [p for p, optional in declared if (rows[p] == "optional") != optional] == []
