"""The project stage: a matched route's projection, serialised once and proven valid.

A projection is the subset of a change one destination may receive (data minimisation),
in the route's target kind. Its XML must be valid against the target kind's XSD before it
leaves the bus: an invalid projection is a bug of a projection function, and the stage
that made it crashes (and after `poison_after` crashes the change is dead-lettered, D300),
rather than sending a receiving system something its schema refuses.

Proven once, not checked each time: a *generic* projection (no projection function: the
fields the target declares, copied by name) of a change of a source kind whose fields the
target takes as they are — same type, code list and facets, at any depth; every field the
target requires required in the source too and not dropped — is valid whenever the change is:
the intake validated the change against the source kind, and both kinds' XSDs are generated
from those same field specs (`renkei schemas build`). `proven` decides that once per (route,
source kind, target kind) from the specs; only the other projections (projection functions,
a target that narrows a field) are validated one by one, which costs a parse and an XSD check
per projection (~8 % of the embedded path's CPU when every projection was checked).

With `[bus] route_fast_path` a generic projection is written by a template from the change's
fragments (`project_by_template`, bus.routing.templates: the same bytes). The check stays on:
an unproven one is validated each time, and a proven one the first time each route and
template write one in a process, so a template that wrote what the schema refuses fails there
(tests/unit/test_projection_templates.py makes it fail).
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from bus.catalog import KindSchema
from bus.catalog.spec import Field
from bus.routing.model import Route, RouteMatch
from bus.routing.projection import PERSONAL_NUMBER
from bus.routing.templates import Fragments, Template

__all__ = ["project", "project_by_template", "proven"]

_PROVEN: dict[tuple[str, str, int, str, int, bool], bool] = {}
#: (proof key, template id) → the template (held: its id stays its own), for each proven route and
#: template whose first projection in this process was validated
_CHECKED: dict[tuple[tuple[str, str, int, str, int, bool], int], Template] = {}


def project(match: RouteMatch, source: KindSchema | None = None) -> bytes:
    """The XML of `match`'s projection, valid against its target kind (AssertionError if not).
    With `source` (the kind of the change it was projected from) a projection `proven` valid
    is not validated again."""
    target = match.target
    xml = target.to_xml(match.record)
    if source is None or not proven(match, source):
        target.xml_schema.assertValid(etree.fromstring(xml))  # our own serialisation, not input
    return xml


def project_by_template(route: Route, target: KindSchema, template: Template, fragments: Fragments,
                        source: KindSchema) -> bytes:
    """The XML of `route`'s generic projection to `target`, written from `template` with the
    change's `fragments` (bus.routing.templates: the plain path's bytes, `project`'s check). A
    projection not `proven` is validated each time, as `project` does; a proven one the first
    time its route and template write one in this process (always on: a template that wrote
    what the schema refuses fails there, before anything of it is sent)."""
    xml = fragments.xml(template)
    if not proven_for(route, target, source):
        target.xml_schema.assertValid(etree.fromstring(xml))
        return xml
    checked = (_key(route, target, source), id(template))
    if checked not in _CHECKED:
        target.xml_schema.assertValid(etree.fromstring(xml))
        _CHECKED[checked] = template
    return xml


def proven(match: RouteMatch, source: KindSchema) -> bool:
    """Whether every projection of a valid `source` change by `match.route` to `match.target`
    is valid (see the module docstring); decided once per route, source and target."""
    return proven_for(match.route, match.target, source)


def _key(route: Route, target: KindSchema, source: KindSchema) -> tuple[str, str, int, str, int, bool]:
    return (route.name, source.kind, source.version, target.kind, target.version, route.may_carry_personal_number)


def proven_for(route: Route, target: KindSchema, source: KindSchema) -> bool:
    """`proven`, for a route and target kind."""
    key = _key(route, target, source)
    found = _PROVEN.get(key)
    if found is None:
        drop = frozenset() if route.may_carry_personal_number else frozenset({PERSONAL_NUMBER})
        found = _PROVEN[key] = route.projection.function is None and _fits(target.fields, source.fields, drop)
    return found


def _fits(target: Sequence[Field], source: Sequence[Field], drop: frozenset[str]) -> bool:
    """Whether copying `target`'s fields by name out of a record valid against `source` (leaving
    out `drop` at any depth, as bus.routing.projection.compile_plan does) gives a valid record."""
    by_name = {f.name: f for f in source}
    for f in target:
        s = by_name.get(f.name)
        if f.name in drop or s is None:
            if not f.optional:
                return False  # always absent, and required
            continue
        if not (f.optional or not s.optional) or not _same(f, s, drop):
            return False
    return True


def _same(f: Field, s: Field, drop: frozenset[str]) -> bool:
    if (f.type, f.codelist, dict(f.facets)) != (s.type, s.codelist, dict(s.facets)):
        return False
    if f.type == "record":
        return _fits(f.children, s.children, drop)
    if f.type == "list":
        if f.item is None or s.item is None:
            return f.item is None and s.item is None
        return _same(f.item, s.item, drop)
    return True
