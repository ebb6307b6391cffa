"""Numeric codes for flat files: the 2-digit codes `schemas/codelists.yaml` promises for CSV
and fixed-width files, in place of the enum symbols XML and Avro carry.

    numeric_record("zei.jumin", 1, record)   # a copy: change.reason 'TENNYU' → '11', sex → '01'

Only the fields the kind's spec declares as enums are replaced (a symbol not in the list is
left as it is, for the sink's own checks); other keys are copied unchanged. A kind the
catalog does not know is returned unchanged (a third-party kind keeps its own values).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from bus.catalog.codelists import CodeLists
from bus.catalog.spec import Field
from bus.errors import ConfigError

__all__ = ["numeric_record", "with_numeric_codes"]


def with_numeric_codes(record: Mapping[str, Any], fields: tuple[Field, ...], codelists: CodeLists) -> dict[str, Any]:
    """A copy of `record` whose enum fields (per `fields`) hold their numeric codes."""
    out = dict(record)
    for f in fields:
        value = out.get(f.name)
        if value is None:
            continue
        if f.type == "enum" and f.codelist is not None and isinstance(value, str):
            out[f.name] = _numeric(codelists, f.codelist, value)
        elif f.type == "record" and isinstance(value, Mapping):
            out[f.name] = with_numeric_codes(value, f.children, codelists)
        elif f.type == "list" and f.item is not None and isinstance(value, list):
            out[f.name] = [_item(v, f.item, codelists) for v in value]
    return out


def _item(value: Any, item: Field, codelists: CodeLists) -> Any:
    if item.type == "record" and isinstance(value, Mapping):
        return with_numeric_codes(value, item.children, codelists)
    if item.type == "enum" and item.codelist is not None and isinstance(value, str):
        return _numeric(codelists, item.codelist, value)
    return value


def _numeric(codelists: CodeLists, name: str, symbol: str) -> str:
    try:
        return codelists.numeric(name, symbol)
    except KeyError:
        return symbol


@functools.lru_cache(maxsize=1)
def _catalog() -> Any:
    from bus.catalog.catalog import Catalog

    return Catalog.load()


def numeric_record(kind: str, version: int, record: Mapping[str, Any]) -> dict[str, Any]:
    """`record` of `kind` v`version` with numeric codes (the shipped or RENKEI_SCHEMAS_DIR catalog)."""
    try:
        catalog = _catalog()
        ks = catalog.get(kind, version)
    except ConfigError:
        return dict(record)
    return with_numeric_codes(record, ks.fields, catalog.codelists)
