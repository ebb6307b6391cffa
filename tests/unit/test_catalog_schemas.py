"""Generated XSD and Avro agree with the field specs and code lists, and with each other.

The walkers read the generated files as plain XML/JSON (not through bus.catalog), so the
tests compare what the generator wrote against the spec, not the generator with itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from bus.catalog import Catalog
from bus.catalog.spec import iter_leaves

CATALOG = Catalog.load()
KINDS = CATALOG.kinds()
RESIDENT_NOTICES = [k for k in KINDS if CATALOG.get(k).root_element == "ResidentNotice"]


XS = "{http://www.w3.org/2001/XMLSchema}"


def xsd_paths(path: Path) -> dict[str, tuple[str, bool]]:
    """Every element path of an XSD (lists as ``name[]``) → (type name or "", optional)."""
    doc = etree.parse(str(path))
    types = {el.get("name"): el for el in doc.getroot().iterfind(f"{XS}complexType")}
    root = doc.getroot().find(f"{XS}element")
    assert root is not None
    out: dict[str, tuple[str, bool]] = {}

    def walk(ctype: etree._Element, prefix: str) -> None:
        for el in ctype.iterfind(f"{XS}sequence/{XS}element"):
            name, type_ = el.get("name", ""), el.get("type", "")
            inline = el.find(f"{XS}complexType")
            if inline is not None:  # a list wrapper: one repeated <item>
                item = inline.find(f"{XS}sequence/{XS}element")
                assert item is not None and item.get("name") == "item"
                assert item.get("maxOccurs") == "unbounded"
                out[f"{prefix}{name}[]"] = (item.get("type", ""), el.get("minOccurs") == "0")
                if item.get("type") in types:
                    walk(types[item.get("type")], f"{prefix}{name}[]/")
                continue
            out[prefix + name] = (type_, el.get("minOccurs") == "0")
            if type_ in types:
                walk(types[type_], f"{prefix}{name}/")

    walk(types[root.get("type")], "")
    return out


def xsd_enumerations(path: Path) -> dict[str, list[str]]:
    """Named simple types of an XSD with enumerations → their values, in order."""
    doc = etree.parse(str(path))
    return {
        st.get("name", ""): [e.get("value", "") for e in st.iterfind(f"{XS}restriction/{XS}enumeration")]
        for st in doc.getroot().iterfind(f"{XS}simpleType")
        if st.find(f"{XS}restriction/{XS}enumeration") is not None
    }


def xsd_element_names(path: Path) -> set[str]:
    doc = etree.parse(str(path))
    return {el.get("name", "") for el in doc.iter(f"{XS}element")}


def avro_paths(path: Path) -> tuple[dict[str, tuple[Any, bool]], dict[str, list[str]]]:
    """(field path → (Avro type, optional), enum name → symbols) of an .avsc, names resolved."""
    schema = json.loads(path.read_text(encoding="utf-8"))
    named: dict[str, Any] = {}
    enums: dict[str, list[str]] = {}
    out: dict[str, tuple[Any, bool]] = {}

    def resolve(t: Any) -> Any:
        if isinstance(t, list):
            non_null = [x for x in t if x != "null"]
            assert len(non_null) == 1, t
            return resolve(non_null[0])
        if isinstance(t, str) and t in named:
            return named[t]
        if isinstance(t, dict) and t.get("type") in ("record", "enum"):
            named[t["name"]] = t
            if t["type"] == "enum":
                enums[t["name"]] = list(t["symbols"])
        return t

    def walk(record: dict[str, Any], prefix: str) -> None:
        for f in record["fields"]:
            t = resolve(f["type"])
            name = prefix + f["name"]
            optional = isinstance(f["type"], list) and f["type"][0] == "null" and "default" in f
            assert optional or "default" not in f, name
            if isinstance(t, dict) and t.get("type") == "array":
                out[name + "[]"] = (t, optional)
                items = resolve(t["items"])
                if isinstance(items, dict) and items.get("type") == "record":
                    walk(items, name + "[]/")
                continue
            out[name] = (t, optional)
            if isinstance(t, dict) and t.get("type") == "record":
                walk(t, name + "/")

    walk(resolve(schema), "")
    return out, enums


def avro_field_names(path: Path) -> set[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "name" in node and "type" in node and not isinstance(node.get("fields"), list):
                names.add(node["name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(path.read_text(encoding="utf-8")))
    return names


# --- generated files agree with the spec ----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_xsd_and_avro_carry_the_same_field_paths_as_the_spec(kind: str) -> None:
    ks = CATALOG.get(kind)
    spec = {path: f.optional for path, f in iter_leaves(ks.fields)}
    avro, _ = avro_paths(ks.avsc_path)
    xsd = xsd_paths(ks.xsd_path)
    assert {path: optional for path, (_, optional) in xsd.items()} == spec
    assert {path: optional for path, (_, optional) in avro.items()} == spec
    assert any(spec.values()) and not all(spec.values())


def test_resident_change_has_exactly_the_documented_fields_in_order() -> None:
    """docs/architecture.md fixes jumin.idou v1; other engineers code against these names."""
    fields = CATALOG.get("jumin.idou").fields
    assert [f.name for f in fields] == [
        "municipality_code", "address_number", "history_number", "resident_code", "personal_number",
        "integrated_address_number", "household_number", "change", "resident_type", "resident_status",
        "name", "birth_date", "sex", "relationship", "nationality", "address", "previous_address",
        "moved_out_to", "moved_out_country", "insurance",
    ]
    optional = {p for p, f in iter_leaves(fields) if f.optional and "/" not in p}
    assert optional == {"resident_code", "personal_number", "nationality", "previous_address", "moved_out_to",
                        "moved_out_country"}
    children = {f.name: [c.name for c in f.children] for f in fields if f.children}
    assert children["change"] == ["reason", "effective_date", "notified_date", "processed_date",
                                  "cancelled_history_number"]
    assert children["name"] == [
        "family_name", "given_name", "family_name_kana", "given_name_kana",
        "former_family_name", "former_family_name_kana", "alias_name", "alias_name_kana",
    ]
    assert children["address"] == ["postal_code", "prefecture", "city", "town", "banchi", "building"]
    assert children["insurance"] == ["kokuho", "kokuho_household", "kaigo", "koki", "nenkin_category",
                                     "jido_teate", "welfare"]


@pytest.mark.parametrize("kind", KINDS)
def test_code_lists_equal_xsd_enumerations_and_avro_enum_symbols(kind: str) -> None:
    ks = CATALOG.get(kind)
    used = {f.codelist for _, f in iter_leaves(ks.fields) if f.codelist}
    applications = ("portal.shinsei", "pittari.shinsei")
    assert used or kind in applications, "every kind but the free-form applications uses code lists"
    xsd_enums = xsd_enumerations(ks.xsd_path)
    _, avro_enums = avro_paths(ks.avsc_path)
    assert set(xsd_enums) == used and set(avro_enums) == used
    for name in used:
        symbols = list(CATALOG.codelists.symbols(name))
        assert xsd_enums[name] == symbols
        assert avro_enums[name] == symbols


def test_the_intermediate_server_copy_has_no_personal_number_and_no_address_number() -> None:
    ks = CATALOG.get("chukan.fukuhon")
    for names in (xsd_element_names(ks.xsd_path), avro_field_names(ks.avsc_path)):
        assert "integrated_address_number" in names and "birth_date" in names  # the walk sees fields
        assert "personal_number" not in names
        assert "address_number" not in names


def test_projection_fields_are_resident_change_fields_with_the_same_types() -> None:
    source = {path: f for path, f in iter_leaves(CATALOG.get("jumin.idou").fields)}
    assert len(RESIDENT_NOTICES) == 8
    for kind in RESIDENT_NOTICES:
        for path, f in iter_leaves(CATALOG.get(kind).fields):
            assert path in source, f"{kind}: {path}"
            upstream = source[path]
            assert (f.type, f.codelist, f.record) == (upstream.type, upstream.codelist, upstream.record)
            assert f.optional or not upstream.optional, f"{kind}: {path} is required but optional upstream"
        assert CATALOG.get(kind).xml_schema is not None


def test_each_system_receives_only_its_insurance_flags() -> None:
    def flags(kind: str) -> set[str]:
        paths = [p for p, _ in iter_leaves(CATALOG.get(kind).fields)]
        return {p.split("/", 1)[1] for p in paths if p.startswith("insurance/")}

    assert flags("zei.jumin") == set()
    assert flags("kokuho.jumin") == {"kokuho", "kokuho_household"}
    assert flags("kaigo.jumin") == {"kaigo"}
    assert flags("koki.jumin") == {"koki"}
    assert flags("nenkin.jumin") == {"nenkin_category"}
    assert flags("fukushi.jumin") == {"jido_teate", "welfare"}
    assert flags("senkyo.jumin") == flags("shugaku.jumin") == set()
    no_number = {"senkyo.jumin", "shugaku.jumin"}  # not a 個人番号利用事務: the kind has no field for it
    for kind in [*RESIDENT_NOTICES, "jumin.idou"]:
        personal = next((f for f in CATALOG.get(kind).fields if f.name == "personal_number"), None)
        if kind in no_number:
            assert personal is None, kind
        else:
            assert personal is not None and personal.optional and personal.personal, kind


def test_xsd_and_avro_document_fields_with_their_japanese_labels() -> None:
    ks = CATALOG.get("jumin.idou")
    doc = etree.parse(str(ks.xsd_path))
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    labels = doc.xpath("//xs:element[@name='municipality_code']/xs:annotation"
                       "/xs:documentation[@xml:lang='ja']/text()", namespaces=ns)
    assert labels == ["地方公共団体コード"]
    reason = doc.xpath("//xs:simpleType[@name='ChangeReason']//xs:enumeration[@value='TENSHUTSU']"
                       "//xs:documentation[@xml:lang='ja']/text()", namespaces=ns)
    assert reason == ["転出"]
    avsc = json.loads(ks.avsc_path.read_text(encoding="utf-8"))
    assert avsc["fields"][0]["doc"].startswith("地方公共団体コード")
    assert not doc.xpath("//xs:import|//xs:include|//@schemaLocation", namespaces=ns)


