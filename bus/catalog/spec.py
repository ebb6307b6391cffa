"""Field specs: `schemas/<kind>/<version>/fields.yaml`, the one source of a kind's fields.

The format (documented for vendors in docs/schemas.md)::

    kind: jumin.idou
    version: 1
    status: released                # or preview: validated when a message names it (XML namespace,
                                    # explicit version), never chosen as the kind's default version
    source_version: 1               # a projection kind: the jumin.idou version its fields are copied
                                    # from (2: the standard's items; a v1 message is upgraded first)
    record: ResidentChange          # Avro record name; also the XML root element
    label_ja: 住民異動
    description: Resident change from the registry.
    types:                          # named record types, used as `record:<Name>`
      Address:
        label_ja: 住所
        fields: [...]
    fields:                         # in wire order
      - name: municipality_code
        type: string                # string|int|boolean|date|datetime|enum:<CodeList>|record:<T>|list:<t>
        pattern: "[0-9]{6}"         # XSD facets: pattern, length, minLength, maxLength (string);
        label_ja: 地方公共団体コード  #              minInclusive, maxInclusive (int)
        description: ...
        optional: true              # default false
        personal: true              # default false

A `list:<type>` field is a wrapper element with one `<item>` child per entry in XML and an
Avro array. Patterns use the common subset of XSD and Python regular expressions (no
``\\d``, ``^`` or ``$``; ranges written out, e.g. ``[0-9]``): they are anchored in both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from bus.catalog.codelists import CodeLists, load_yaml
from bus.errors import ConfigError

__all__ = ["SCALARS", "Field", "KindSpec", "iter_leaves", "load_spec"]

SCALARS = ("string", "int", "boolean", "date", "datetime")
_FACETS = {"string": ("pattern", "length", "minLength", "maxLength"), "int": ("minInclusive", "maxInclusive")}
_KEYS = {"name", "type", "optional", "personal", "label_ja", "description"} | {
    f for names in _FACETS.values() for f in names
}
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_KIND = re.compile(r"[a-z][a-z0-9]*(\.[a-z][a-z0-9]*)+")


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a kind. `type` is string|int|boolean|date|datetime|enum|record|list."""

    name: str
    type: str
    optional: bool = False
    children: tuple[Field, ...] = ()  # the fields of a record
    codelist: str | None = None  # the code list of an enum
    personal: bool = False
    label_ja: str = ""
    facets: Mapping[str, str | int] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    record: str | None = None  # the record type name of a record
    item: Field | None = None  # what a list holds (named "item")
    description: str = ""


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: str
    version: int
    record: str
    root_element: str
    label_ja: str
    description: str
    fields: tuple[Field, ...]
    source: Path
    preview: bool = False  # `status: preview`: accepted when named, never the default version
    source_version: int = 1  # the jumin.idou version a projection to this kind copies from

    @property
    def namespace(self) -> str:
        return f"urn:renkei:schema:{self.kind}:{self.version}"

    @property
    def avro_namespace(self) -> str:
        return f"renkei.{self.kind.replace('.', '_')}.v{self.version}"


def iter_leaves(fields: tuple[Field, ...], prefix: str = "") -> Iterator[tuple[str, Field]]:
    """Every field as (path, field), records first then their children; lists as ``name[]``."""
    for f in fields:
        path = f"{prefix}{f.name}"
        if f.type == "list":
            yield f"{path}[]", f
            item = f.item
            if item is not None and item.type == "record":
                yield from iter_leaves(item.children, f"{path}[]/")
        else:
            yield path, f
            if f.type == "record":
                yield from iter_leaves(f.children, f"{path}/")


def load_spec(path: Path, codelists: CodeLists) -> KindSpec:
    """Parse and check one fields.yaml; errors are ConfigError naming the file and field."""
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the field spec: {exc}", where=str(path)) from exc
    if not isinstance(raw, dict):
        raise ConfigError("a field spec must be a mapping", where=str(path))
    kind, version, record = raw.get("kind"), raw.get("version"), raw.get("record")
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ConfigError(f"kind must look like 'jumin.idou', got {kind!r}", where=str(path))
    if not isinstance(version, int) or version < 1:
        raise ConfigError(f"version must be an integer >= 1, got {version!r}", where=str(path))
    if path.parent.name != str(version) or path.parent.parent.name != kind:
        raise ConfigError(f"{kind} v{version} must live in {kind}/{version}/fields.yaml", where=str(path))
    if not isinstance(record, str) or not record.isidentifier():
        raise ConfigError(f"record must be a name, got {record!r}", where=str(path))
    parser = _Parser(path, raw.get("types") or {}, codelists)
    return KindSpec(
        kind=kind,
        version=version,
        record=record,
        root_element=str(raw.get("root_element", record)),
        label_ja=str(raw.get("label_ja", "")),
        description=str(raw.get("description", "")),
        fields=parser.fields(raw.get("fields"), record, ()),
        source=path,
        preview=_status(raw.get("status", "released"), path) == "preview",
        source_version=_source_version(raw.get("source_version", 1), path),
    )


def _source_version(value: Any, path: Path) -> int:
    if value not in (1, 2) or isinstance(value, bool):
        raise ConfigError(f"source_version must be 1 or 2 (the jumin.idou version a projection copies from), "
                          f"got {value!r}", where=str(path))
    return int(value)


def _status(value: Any, path: Path) -> str:
    if value not in ("released", "preview"):
        raise ConfigError(f"status must be released or preview, got {value!r}", where=str(path))
    return str(value)


class _Parser:
    def __init__(self, path: Path, types: Any, codelists: CodeLists) -> None:
        if not isinstance(types, dict):
            raise ConfigError("types must map record type names to {fields: [...]}", where=str(path))
        self.path, self.types, self.codelists = path, types, codelists

    def fields(self, entries: Any, where: str, stack: tuple[str, ...]) -> tuple[Field, ...]:
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{where}: fields must be a non-empty list", where=str(self.path))
        parsed = tuple(self.field(e, where, stack) for e in entries)
        names = [f.name for f in parsed]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"{where}: duplicate fields {', '.join(dupes)}", where=str(self.path))
        return parsed

    def field(self, entry: Any, where: str, stack: tuple[str, ...]) -> Field:
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: each field must be a mapping, got {entry!r}", where=str(self.path))
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{where}: field name must be snake_case, got {name!r}", where=str(self.path))
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise ConfigError(f"{where}/{name}: unknown keys {', '.join(unknown)}", where=str(self.path))
        common = {
            "optional": bool(entry.get("optional", False)),
            "personal": bool(entry.get("personal", False)),
            "label_ja": str(entry.get("label_ja", "")),
            "description": str(entry.get("description", "")),
        }
        return self.typed(name, str(entry.get("type", "")), entry, f"{where}/{name}", stack, common)

    def typed(
        self,
        name: str,
        type_: str,
        entry: dict[str, Any],
        where: str,
        stack: tuple[str, ...],
        common: dict[str, Any],
    ) -> Field:
        head, _, rest = type_.partition(":")
        if head == "list" and rest:
            if rest.startswith("list"):
                raise ConfigError(f"{where}: a list of lists is not supported", where=str(self.path))
            item = self.typed("item", rest, entry, f"{where}[]", stack, {**common, "optional": False})
            return Field(name, "list", item=item, **common)
        facets = {k: entry[k] for k in entry if k in _FACETS["string"] + _FACETS["int"]}
        allowed = _FACETS.get(type_, ())
        bad = sorted(k for k in facets if k not in allowed)
        if bad:
            raise ConfigError(f"{where}: facets {', '.join(bad)} do not apply to {type_}",
                              where=str(self.path))
        if "pattern" in facets:
            self.check_pattern(str(facets["pattern"]), where)
        if type_ in SCALARS:
            return Field(name, type_, facets=MappingProxyType(facets), **common)
        if head == "enum":
            if rest not in self.codelists:
                raise ConfigError(f"{where}: unknown code list {rest!r}", where=str(self.path))
            return Field(name, "enum", codelist=rest, **common)
        if head == "record":
            if rest in stack:
                raise ConfigError(f"{where}: record {rest} contains itself", where=str(self.path))
            body = self.types.get(rest)
            if not isinstance(body, dict):
                raise ConfigError(f"{where}: unknown record type {rest!r} (define it under types:)",
                                  where=str(self.path))
            children = self.fields(body.get("fields"), rest, (*stack, rest))
            label = common["label_ja"] or str(body.get("label_ja", ""))
            return Field(name, "record", children=children, record=rest, **{**common, "label_ja": label})
        raise ConfigError(f"{where}: unknown type {type_!r}", where=str(self.path))

    def check_pattern(self, pattern: str, where: str) -> None:
        if "\\d" in pattern or "^" in pattern.replace("[^", "") or "$" in pattern:
            raise ConfigError(f"{where}: write patterns without \\d, ^ and $ (XSD and Python differ)",
                              where=str(self.path))
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{where}: bad pattern {pattern!r}: {exc}", where=str(self.path)) from exc
