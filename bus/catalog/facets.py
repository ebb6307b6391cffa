"""The XSD facets, checked on a record dict (Avro input never meets the XSD).

`check_facets` returns ``(path, rule, expected)`` triples:

- rule ``pattern``, ``length``, ``minLength``, ``maxLength``, ``minInclusive``,
  ``maxInclusive``: expected is the facet value (``"[0-9]{12}"``, ``"100"``);
- rule ``enumeration``: expected is the code list name (a value not in the list);
- rule ``required``: a required field is missing or None (expected ``"a value"``);
- rule ``type``: a value of the wrong Python type (expected the spec type name).

Paths are ``change/cancelled_history_number``, ``items[2]/key``: the masking helpers
(bus.masking.is_personal) read the last segment.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from bus.catalog.codelists import CodeLists
from bus.catalog.spec import Field

__all__ = ["FacetChecker", "Violation"]

Violation = tuple[str, str, str]

# Compiled form: a checker takes (value, path, out) and appends violations.
_Check = Callable[[Any, str, list[Violation]], None]
_Plan = list[tuple[str, bool, _Check]]  # (name, optional, check) per field of a record

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "enum": (str,),
    "int": (int,),
    "boolean": (bool,),
    "date": (date,),
    "datetime": (datetime,),
    "record": (dict,),
    "list": (list, tuple),
}


class FacetChecker:
    """Compiled once per kind into a plan of small closures (patterns, enum symbol sets)."""

    def __init__(self, fields: tuple[Field, ...], codelists: CodeLists) -> None:
        self._codelists = codelists
        self._plan = self._record_plan(fields)

    def check(self, record: dict[str, Any]) -> list[Violation]:
        out: list[Violation] = []
        _check_record(record, "", out, self._plan)
        return out

    def _record_plan(self, fields: tuple[Field, ...]) -> _Plan:
        return [(f.name, f.optional, self._field(f)) for f in fields]

    def _field(self, f: Field) -> _Check:
        if f.type == "list" and f.item is not None:
            item = self._field(f.item)

            def check_list(value: Any, path: str, out: list[Violation]) -> None:
                if not isinstance(value, list | tuple):
                    out.append((path, "type", "list"))
                    return
                for i, entry in enumerate(value):
                    item(entry, f"{path}[{i}]", out)

            return check_list
        types, expected = _TYPES[f.type], f.record or f.codelist or f.type
        exclude: type | None = bool if f.type == "int" else datetime if f.type == "date" else None
        inner = self._inner(f)

        def check(value: Any, path: str, out: list[Violation]) -> None:
            if not isinstance(value, types) or (exclude is not None and isinstance(value, exclude)):
                out.append((path, "type", expected))
            elif inner is not None:
                inner(value, path, out)

        return check

    def _inner(self, f: Field) -> _Check | None:
        if f.type == "record":
            plan = self._record_plan(f.children)
            return lambda value, path, out: _check_record(value, path + "/", out, plan)
        if f.type == "enum" and f.codelist:
            symbols, name = frozenset(self._codelists.symbols(f.codelist)), f.codelist

            def check_enum(value: Any, path: str, out: list[Violation]) -> None:
                if value not in symbols:
                    out.append((path, "enumeration", name))

            return check_enum
        tests = [_facet(facet, limit) for facet, limit in f.facets.items()]
        if not tests:
            return None

        def check_facets(value: Any, path: str, out: list[Violation]) -> None:
            for test, facet, limit in tests:
                if not test(value):
                    out.append((path, facet, limit))

        return check_facets


def _check_record(record: Any, prefix: str, out: list[Violation], plan: _Plan) -> None:
    for name, optional, check in plan:
        value = record.get(name)
        if value is None:
            if not optional:
                out.append((prefix + name, "required", "a value"))
        else:
            check(value, prefix + name, out)


def _facet(facet: str, limit: str | int) -> tuple[Callable[[Any], bool], str, str]:
    if facet == "pattern":
        match = re.compile(str(limit)).fullmatch
        return (lambda v: match(v) is not None), facet, str(limit)
    n = int(limit)
    tests: dict[str, Callable[[Any], bool]] = {
        "length": lambda v: len(v) == n,
        "minLength": lambda v: len(v) >= n,
        "maxLength": lambda v: len(v) <= n,
        "minInclusive": lambda v: v >= n,
        "maxInclusive": lambda v: v <= n,
    }
    return tests[facet], facet, str(limit)
