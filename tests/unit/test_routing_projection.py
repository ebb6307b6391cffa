"""Projection properties over random resident changes (hypothesis): numbers never leak."""

from __future__ import annotations

import dataclasses
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bus.catalog import Catalog, KindSchema
from bus.catalog.spec import Field
from bus.paths import routes_dir
from bus.routing import RouteTable
from bus.routing.projection import Projector, compile_plan, copy_by_plan, strip_fields

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
given, settings, assume = hypothesis.given, hypothesis.settings, hypothesis.assume

CATALOG = Catalog.load()
TABLE = RouteTable.load(routes_dir(), CATALOG)
SOURCE = CATALOG.get("jumin.idou")
KATAKANA = "アイウエオカキクケコサシスセソタチツテトナニヌネノ"
NUMBERED = {
    "personal_number": "[0-9]{12}",
    "address_number": "1[0-9]{11}",
    "integrated_address_number": "9[0-9]{11}",
    "household_number": "5[0-9]{7}",
    "resident_code": "[0-9]{11}",
    "municipality_code": "131016|141003|271004",
    "postal_code": "[0-9]{7}",
}


def strategy(field: Field) -> Any:
    """Values for one field of the spec (shape right; facets only where the test needs them)."""
    if field.name in NUMBERED:
        base = st.from_regex(NUMBERED[field.name], fullmatch=True)
    elif field.type == "record":
        base = st.fixed_dictionaries({c.name: strategy(c) for c in field.children})
    elif field.type == "list" and field.item is not None:
        base = st.lists(strategy(field.item), max_size=2)
    elif field.type == "enum":
        base = st.sampled_from(CATALOG.codelists.symbols(field.codelist or ""))
    elif field.type == "date":
        base = st.dates(date(1900, 1, 1), date(2030, 12, 31))
    elif field.type == "int":
        base = st.integers(1, 10_000)
    elif field.type == "boolean":
        base = st.booleans()
    else:
        base = st.text(KATAKANA, min_size=1, max_size=8)
    optional = field.optional and field.name != "personal_number"  # always present: what must not leak
    return st.one_of(st.none(), base) if optional else base


RECORDS = st.fixed_dictionaries({f.name: strategy(f) for f in SOURCE.fields})


def leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in leaves(v)]
    return [value]


def keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys(v)}
    return set()


def planted(record: dict[str, Any]) -> dict[str, Any]:
    """The record with the numbers also planted inside every nested record (hostile input)."""
    out = dict(record)
    for name, value in record.items():
        if isinstance(value, dict):
            out[name] = {**value, "personal_number": record["personal_number"],
                         "address_number": record["address_number"]}
    return out


def hostile_fukuhon() -> KindSchema:
    """chukan.fukuhon as if someone had declared both numbers in it, at the top and in Address."""
    ks = CATALOG.get("chukan.fukuhon")
    numbers = (Field("personal_number", "string", optional=True), Field("address_number", "string"))

    def with_numbers(fields: tuple[Field, ...]) -> tuple[Field, ...]:
        return tuple(dataclasses.replace(f, children=numbers + f.children) if f.type == "record" else f
                     for f in fields)

    spec = dataclasses.replace(ks.spec, fields=numbers + with_numbers(ks.spec.fields))
    return KindSchema(spec, CATALOG.codelists)


HOSTILE = hostile_fukuhon()
def _chukan_route() -> Any:
    """A direct route to the 中間サーバー (no shipped route has one: the 団体内統合宛名 function
    is its path), as an integrator may still write it."""
    folder = Path(tempfile.mkdtemp())
    (folder / "chukan.yaml").write_text(
        "routes:\n  - {name: chukan-fukuhon, destination: chukan, takes: jumin.idou, when: 'size(changed) > 0',\n"
        "     projection: {kind: chukan.fukuhon, function: chukan_fukuhon}}\n", encoding="utf-8")
    [route] = RouteTable.load(folder, CATALOG).routes
    return route


CHUKAN_ROUTE = _chukan_route()


@settings(max_examples=120, deadline=None)
@given(RECORDS)
def test_the_fukuhon_never_holds_a_personal_number_or_address_number(record: dict[str, Any]) -> None:
    assume(record["personal_number"] not in (record["integrated_address_number"], record["address_number"]))
    source = planted(record)
    out = Projector(CHUKAN_ROUTE, HOSTILE)(source, TABLE.context(source, "131016"))
    assert not keys(out) & {"personal_number", "address_number"}
    texts = [str(v) for v in leaves(out)]
    assert record["personal_number"] not in texts and record["address_number"] not in texts
    assert out["integrated_address_number"] == record["integrated_address_number"]
    assert out["deceased"] is (record["change"]["reason"] == "SHIBOU")


@settings(max_examples=100, deadline=None)
@given(RECORDS)
def test_routes_without_a_legal_basis_never_carry_the_personal_number(record: dict[str, Any]) -> None:
    number = record["personal_number"]
    assume(all(number not in str(v) for v in leaves({**record, "personal_number": None})))
    for match in TABLE.route(planted(record), record["municipality_code"], message_id="m"):
        found = number in [str(v) for v in leaves(match.record)]
        if match.route.legal_basis is None:
            assert not found, match.route.name
            assert "personal_number" not in keys(match.record), match.route.name
        else:
            assert match.record["personal_number"] == number, match.route.name


@settings(max_examples=50, deadline=None)
@given(RECORDS)
def test_a_generic_projection_copies_exactly_the_declared_fields(record: dict[str, Any]) -> None:
    target = CATALOG.get("kaigo.jumin")
    out = copy_by_plan(planted(record), compile_plan(target.fields))

    def shape(fields: tuple[Field, ...], value: dict[str, Any]) -> None:
        assert list(value) == [f.name for f in fields]
        for f in fields:
            if f.type == "record" and value[f.name] is not None:
                shape(f.children, value[f.name])

    shape(target.fields, out)


def test_strip_fields_returns_the_same_object_when_there_is_nothing_to_strip() -> None:
    clean = {"a": {"b": [1, {"c": 2}]}}
    assert strip_fields(clean, frozenset({"personal_number"})) is clean
    dirty = {"a": [{"personal_number": "1"}], "personal_number": "1"}
    assert strip_fields(dirty, frozenset({"personal_number"})) == {"a": [{}]}
    assert dirty["a"] == [{"personal_number": "1"}]  # the input is never modified
