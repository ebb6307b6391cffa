"""Projection templates: a proven projection's XML written from fragments of its change,
each written once per change (`[bus] route_fast_path`, on by default).

The plain path (bus.routing.projection.Projector, then KindSchema.to_xml) copies the fields
a target declares into a new record and writes that record: a change routed to five
destinations is copied and written five times, and most of its fields (the name, the
addresses, the change) come out the same text each time. A *template*, compiled once per
(target kind, version, fields left out), is the target's root element around its fields in
order; per change, `Fragments` writes each field's `<name>…</name>` once and every projection
of that change whose field has the same shape (same path, type and children) reuses the text.

Used only for a projection proven valid (bus.stages.project.proven: a generic projection whose
target takes the source's fields as they are), so the target field's format is the source
field's: the bytes are the plain path's bytes (tests/unit/test_projection_templates.py compares
them on every route and synthetic change). The hand-optimised code of the route stage is here
and nowhere else; with the setting off the route stage takes the plain path, which stays tested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from bus.catalog import KindSchema
from bus.catalog.codec import _FORMATS as FORMATS  # the codec's own scalar formats: the same text
from bus.catalog.spec import Field

__all__ = ["Fragments", "Template", "template_for"]

_SCALAR, _RECORD, _LIST = 0, 1, 2
_SHAPES: dict[tuple[Any, ...], int] = {}  # (path, shape) → key: the same key in every template
#: target kind → fields left out → its template (by the KindSchema itself: a catalog of its own,
#: in a test or a reloaded catalog, gets templates of its own)
_TEMPLATES: WeakKeyDictionary[KindSchema, dict[frozenset[str], Template]] = WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class _Node:
    key: int  # the fragment's key: equal keys, equal text for one source record
    name: str
    open: str
    close: str
    form: int  # _SCALAR, _RECORD or _LIST
    fmt: Callable[[Any], str] | None  # a scalar's (or a list of scalars' item) format
    children: tuple[_Node, ...]  # a record's fields, or a list's record item's
    item_is_record: bool


@dataclass(frozen=True, slots=True)
class Template:
    """One target kind's projection, as an opening, its fields' nodes and a closing."""

    kind: str
    version: int
    open: str
    close: str
    nodes: tuple[_Node, ...]


def template_for(target: KindSchema, drop: frozenset[str]) -> Template:
    """The template of `target`'s generic projection without `drop` (at any depth); made once."""
    of_target = _TEMPLATES.get(target)
    if of_target is None:
        of_target = _TEMPLATES[target] = {}
    found = of_target.get(drop)
    if found is None:
        closing = f"</{target.root_element}>"
        empty = target.to_xml({}).decode()  # the codec's own opening (declaration, namespace)
        assert empty.endswith(closing)
        found = of_target[drop] = Template(target.kind, target.version, empty[:-len(closing)], closing,
                                           _nodes(target.fields, drop, ()))
    return found


def _shape(f: Field, drop: frozenset[str]) -> tuple[Any, ...]:
    if f.type == "record":
        return ("record", tuple((c.name, _shape(c, drop)) for c in f.children if c.name not in drop))
    if f.type == "list":
        return ("list", None if f.item is None else _shape(f.item, drop))
    return (f.type,)


def _nodes(fields: Iterable[Field], drop: frozenset[str], path: tuple[str, ...]) -> tuple[_Node, ...]:
    nodes: list[_Node] = []
    for f in fields:
        if f.name in drop:
            continue
        here = (*path, f.name)
        key = _SHAPES.setdefault((here, _shape(f, drop)), len(_SHAPES))
        opening, closing = f"<{f.name}>", f"</{f.name}>"
        if f.type == "record":
            nodes.append(_Node(key, f.name, opening, closing, _RECORD, None, _nodes(f.children, drop, here), False))
        elif f.type == "list":
            item = f.item
            if item is not None and item.type == "record":
                nodes.append(_Node(key, f.name, opening, closing, _LIST, None, _nodes(item.children, drop, here), True))
            else:
                fmt = FORMATS[item.type] if item is not None else None
                nodes.append(_Node(key, f.name, opening, closing, _LIST, fmt, (), False))
        else:
            nodes.append(_Node(key, f.name, opening, closing, _SCALAR, FORMATS[f.type], (), False))
    return tuple(nodes)


class Fragments:
    """One source record's fragments, written on first use: make one per change (and source
    version), and write every proven projection of that change with it."""

    __slots__ = ("_memo", "_record")

    def __init__(self, record: Mapping[str, Any]) -> None:
        self._record = record
        self._memo: dict[int, str] = {}

    def xml(self, template: Template) -> bytes:
        """The projection's XML: the plain path's bytes, for a record valid against the source."""
        return f"{template.open}{self._inner(template.nodes, self._record)}{template.close}".encode()

    def _inner(self, nodes: tuple[_Node, ...], record: Mapping[str, Any]) -> str:
        memo = self._memo
        parts: list[str] = []
        for node in nodes:
            text = memo.get(node.key)
            if text is None:
                text = memo[node.key] = _write(node, record.get(node.name), self._inner)
            parts.append(text)
        return "".join(parts)


def _write(node: _Node, value: Any, inner: Callable[[tuple[_Node, ...], Mapping[str, Any]], str]) -> str:
    if value is None:
        return ""
    if node.form == _SCALAR:
        assert node.fmt is not None
        return f"{node.open}{node.fmt(value)}{node.close}"
    if node.form == _RECORD:
        return f"{node.open}{inner(node.children, value)}{node.close}"
    return f"{node.open}{''.join(_item(node, entry) for entry in value)}{node.close}"


def _item(node: _Node, entry: Any) -> str:
    """One list entry; not memoised (the entries of a list share their nodes' keys)."""
    if node.item_is_record:
        return f"<item>{''.join(_write(child, entry.get(child.name), _plain) for child in node.children)}</item>"
    assert node.fmt is not None
    return f"<item>{node.fmt(entry)}</item>"


def _plain(nodes: tuple[_Node, ...], record: Mapping[str, Any]) -> str:
    return "".join(_write(node, record.get(node.name), _plain) for node in nodes)
