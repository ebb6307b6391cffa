"""Projection templates (bus.routing.templates, `[bus] route_fast_path`): a generic
projection written from its change's fragments is the plain path's bytes, on every route and
synthetic change of every kind the routes take; the route stage publishes the same with the
setting on and off; a template that wrote what its target's schema refuses is caught before
anything is sent, by the always-on check (bus.stages.project.project_by_template)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from bus.catalog import Catalog
from bus.envelope import Envelope
from bus.errors import ConfigError
from bus.routing.model import RouteMatch
from bus.routing.router import RouteTable
from bus.routing.templates import Fragments, Template, template_for
from bus.settings import Settings
from bus.stages.order import Message
from bus.stages.project import project, project_by_template, proven
from bus.stages.route import RouteStage
from bus.synthetic.samples import sample_records

KINDS = ("jumin.idou", "jumin.shien", "pittari.shinsei")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def routes(catalog: Catalog) -> RouteTable:
    return RouteTable.load(catalog=catalog)


def _records(kind: str, catalog: Catalog, n: int = 150) -> list[dict[str, object]]:
    return list(sample_records(kind, catalog, seed=23, n=n))


@pytest.mark.parametrize("kind", KINDS)
def test_a_template_writes_the_plain_paths_bytes_for_every_generic_route(kind: str, catalog: Catalog,
                                                                         routes: RouteTable) -> None:
    source = catalog.get(kind)
    compared = 0
    for record in _records(kind, catalog):
        fragments: dict[int, Fragments] = {}
        for route, projector, projected_from, variables in routes.matching(record, record["municipality_code"],
                                                                           kind=kind):
            if projector.named is not None:
                continue
            plain = project(RouteMatch(route, projector.target, projector(projected_from, variables, "m")), source)
            written = fragments.setdefault(id(projected_from), Fragments(projected_from))
            assert written.xml(template_for(projector.target, projector.never)) == plain
            compared += 1
    assert compared > 100


def test_fragments_are_shared_between_the_projections_of_one_change(catalog: Catalog, routes: RouteTable) -> None:
    record = next(r for r in _records("jumin.idou", catalog)
                  if len([m for m in routes.matching(r, r["municipality_code"]) if m[1].named is None]) >= 3)
    generic = [m for m in routes.matching(record, record["municipality_code"]) if m[1].named is None]
    fragments = Fragments(generic[0][2])
    fragments.xml(template_for(generic[0][1].target, generic[0][1].never))
    after_first = len(fragments._memo)
    for _, projector, _, _ in generic[1:]:
        fragments.xml(template_for(projector.target, projector.never))
    assert len(fragments._memo) < after_first * len(generic) / 2  # most fields written once, not per projection


def test_a_template_that_writes_what_the_schema_refuses_fails_before_anything_is_sent(
        catalog: Catalog, routes: RouteTable) -> None:
    record = _records("jumin.idou", catalog)[0]
    source = catalog.get("jumin.idou")
    route, projector, projected_from, _ = next(m for m in routes.matching(record, record["municipality_code"])
                                               if m[1].named is None and proven(RouteMatch(m[0], m[1].target, {}),
                                                                                source))
    good = template_for(projector.target, projector.never)
    project_by_template(route, projector.target, good, Fragments(projected_from), source)  # checked once, valid
    broken = Template(good.kind, good.version, good.open, good.close, good.nodes[1:])  # a required field lost
    with pytest.raises(etree.DocumentInvalid):
        project_by_template(route, projector.target, broken, Fragments(projected_from), source)
    xml = project_by_template(route, projector.target, good, Fragments(projected_from), source)
    projector.target.xml_schema.assertValid(etree.fromstring(xml))



@pytest.mark.parametrize("kind", KINDS)
def test_the_route_stage_publishes_the_same_with_templates_on_and_off(kind: str, catalog: Catalog,
                                                                      routes: RouteTable) -> None:
    ks = catalog.get(kind)
    stages = [RouteStage(None, catalog, routes, None, None, fast_path=on) for on in (True, False)]  # type: ignore[arg-type]
    planned = 0
    for i, record in enumerate(_records(kind, catalog, 60)):
        envelope = Envelope(f"m{i}", ks.kind, ks.version, "application/xml", record["municipality_code"],
                            "test", f"s{i}", 1)
        message = Message(envelope, envelope.to_headers(), ks.to_xml(record))
        on, off = (stage._plan(message) for stage in stages)
        assert [(q, m.body, m.message_id, m.key, m.headers) for q, m in on.outgoing] == \
               [(q, m.body, m.message_id, m.key, m.headers) for q, m in off.outgoing]
        assert on.destinations == off.destinations
        planned += len(on.outgoing)
    assert planned > 0


def test_the_setting_is_on_unless_the_config_or_the_environment_turns_it_off(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text("[bus]\n", encoding="utf-8")
    assert Settings.load(config, env={}).bus.route_fast_path is True
    assert Settings.load(config, env={"RENKEI_ROUTE_FAST_PATH": "0"}).bus.route_fast_path is False
    config.write_text("[bus]\nroute_fast_path = false\n", encoding="utf-8")
    assert Settings.load(config, env={}).bus.route_fast_path is False
    config.write_text('[bus]\nroute_fast_path = "fast"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[bus\] route_fast_path must be true or false"):
        Settings.load(config, env={})


def test_a_template_belongs_to_its_kind_schema_not_to_a_name(catalog: Catalog) -> None:
    """A catalog of its own (a test's, a reloaded one) may define a kind differently under the
    same name and version: it gets templates of its own, made from its own fields."""
    ours, other = catalog.get("kaigo.jumin"), Catalog.load().get("kaigo.jumin")
    drop = frozenset({"personal_number"})
    assert template_for(ours, drop) is template_for(ours, drop)
    assert template_for(other, drop) is not template_for(ours, drop)
    assert template_for(ours, frozenset()) is not template_for(ours, drop)
    assert len(template_for(ours, frozenset()).nodes) == len(template_for(ours, drop).nodes) + 1
