"""Projections: what of a resident change a destination receives (data minimisation).

- The **generic projection** copies, by field name and recursively, exactly the fields the
  target kind's field spec declares. What a system may see is therefore defined by its
  schema (schemas/<kind>/<version>/fields.yaml), reviewed in one place.
- The **個人番号** (`personal_number`) is dropped, at any depth, unless the route declares a
  legal basis. A route whose target *requires* it without a basis does not load.
- **Named projections** compute what a copy cannot, registered in `PROJECTIONS`:
  `chukan_fukuhon` (副本 for the 中間サーバー: deceased/death_date from 死亡; never a
  個人番号 or 宛名番号, even if the target spec declared one), `portal_oshirase`,
  `togo_oshirase` (bus.routing.notices) and `togo_jumin` (bus.routing.togo: the 団体内統合宛名
  function).

A `Projector` is built once per route (the copy plan is compiled from the spec then), and
called once per matching message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bus.catalog import KindSchema
from bus.catalog.spec import Field
from bus.routing.model import NamedProjection, ProjectionInput, Route
from bus.routing.notices import PORTAL_OSHIRASE, TOGO_OSHIRASE
from bus.routing.togo import TOGO_JUMIN

__all__ = [
    "PERSONAL_NUMBER",
    "PROJECTIONS",
    "Plan",
    "Projector",
    "chukan_fukuhon",
    "compile_plan",
    "copy_by_plan",
    "missing_fields",
    "register_projection",
    "strip_fields",
]

PERSONAL_NUMBER = "personal_number"

#: (every field name in wire order, the record/list fields among them with their sub-plan)
Plan = tuple[tuple[str, ...], tuple[tuple[str, "Plan | None", bool], ...]]


def compile_plan(fields: Iterable[Field], drop: frozenset[str] = frozenset()) -> Plan:
    """The copy plan of a field tree (bus.catalog.spec.Field), leaving out `drop` at any depth."""
    names: list[str] = []
    nested: list[tuple[str, Plan | None, bool]] = []
    for f in fields:
        if f.name in drop:
            continue
        names.append(f.name)
        if f.type == "list":
            item = f.item
            sub = compile_plan(item.children, drop) if item is not None and item.type == "record" else None
            nested.append((f.name, sub, True))
        elif f.type == "record":
            nested.append((f.name, compile_plan(f.children, drop), False))
    return tuple(names), tuple(nested)


def copy_by_plan(record: Mapping[str, Any], plan: Plan) -> dict[str, Any]:
    """Copy the planned fields of `record`, in the plan's order; absent ones become None."""
    get = record.get
    out = {name: get(name) for name in plan[0]}
    for name, sub, is_list in plan[1]:
        value = out[name]
        if value is None:
            continue
        if is_list:
            out[name] = [copy_by_plan(v, sub) for v in value] if sub is not None else list(value)
        elif sub is not None:
            out[name] = copy_by_plan(value, sub)
    return out


def strip_fields(value: Any, names: frozenset[str]) -> Any:
    """`value` without the keys in `names`, at any depth of dicts and lists.

    Returns `value` itself when none is there (the common case: a scan, no copy), else new
    containers (the input is never modified).
    """
    return _without(value, names) if _holds_any(value, names) else value


def _holds_any(value: Any, names: frozenset[str]) -> bool:
    """Whether a key in `names` is anywhere in nested dicts and lists.

    Any other mapping counts as a hit, so that `_without` rebuilds it as a plain dict.
    """
    if isinstance(value, dict):
        if not names.isdisjoint(value):
            return True
        values: Iterable[Any] = value.values()
    elif isinstance(value, list):
        values = value
    else:
        return isinstance(value, Mapping)
    for v in values:
        if isinstance(v, dict | list) and _holds_any(v, names):
            return True
    return False


def _without(value: Any, names: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _without(v, names) for k, v in value.items() if k not in names}
    if isinstance(value, list):
        return [_without(v, names) for v in value]
    return value


def missing_fields(target: Iterable[Field], source: Iterable[Field], prefix: str = "") -> list[str]:
    """Paths of required target fields the source spec has no field for (by name, recursively).

    A generic projection to such a target could never produce a valid message.
    """
    by_name = {f.name: f for f in source}
    missing: list[str] = []
    for f in target:
        path = f"{prefix}{f.name}"
        s = by_name.get(f.name)
        if s is None:
            if not f.optional:
                missing.append(path)
        elif f.type == "record" and s.type == "record":
            missing.extend(missing_fields(f.children, s.children, f"{path}/"))
    return missing


def chukan_fukuhon(record: Mapping[str, Any], p: ProjectionInput) -> dict[str, Any]:
    """副本 update for the 中間サーバー: the copy plus deceased/death_date from a 死亡.

    The intermediate server is keyed by 団体内統合宛名番号; the 個人番号 and the 宛名番号 are
    removed whatever the target spec says (belt and braces: the plan leaves them out too).
    """
    out = p.copy(record)
    change = record.get("change") or {}
    deceased = change.get("reason") == "SHIBOU"
    if "deceased" in out:
        out["deceased"] = deceased
    if "death_date" in out:
        out["death_date"] = change.get("effective_date") if deceased else None
    result: dict[str, Any] = strip_fields(out, CHUKAN_FUKUHON.never)
    return result


CHUKAN_FUKUHON = NamedProjection(
    name="chukan_fukuhon",
    target_kind="chukan.fukuhon",
    function=chukan_fukuhon,
    description="副本 update for the intermediate server: deceased/death_date computed; no 個人番号/宛名番号",
    never=frozenset({PERSONAL_NUMBER, "address_number"}),
)

#: Named projection functions, by the name a route gives in `projection.function`.
PROJECTIONS: dict[str, NamedProjection] = {p.name: p for p in (CHUKAN_FUKUHON, PORTAL_OSHIRASE, TOGO_JUMIN,
                                                                     TOGO_OSHIRASE)}


def register_projection(projection: NamedProjection) -> NamedProjection:
    """Register a named projection (before routes naming it are loaded)."""
    if projection.name in PROJECTIONS and PROJECTIONS[projection.name] is not projection:
        raise ValueError(f"a projection named {projection.name!r} is already registered")
    PROJECTIONS[projection.name] = projection
    return projection


class Projector:
    """Projects a source record for one route; built once, called per matching message."""

    def __init__(self, route: Route, target: KindSchema) -> None:
        self.route = route
        self.target = target
        self.named = PROJECTIONS[route.projection.function] if route.projection.function else None
        drop = set() if route.may_carry_personal_number else {PERSONAL_NUMBER}
        if self.named is not None:
            drop |= self.named.never
        self.never = frozenset(drop)
        self.plan = compile_plan(target.fields, self.never)

    def copy(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return copy_by_plan(record, self.plan)

    def __call__(
        self, record: Mapping[str, Any], context: Mapping[str, Any], message_id: str | None = None
    ) -> dict[str, Any]:
        if self.named is None:
            return copy_by_plan(record, self.plan)
        given = ProjectionInput(self.route, self.target, context, message_id, self.copy)
        out = self.named.function(record, given)
        if self.never:
            out = strip_fields(out, self.never)
        return out
