"""Projections proven valid once, from the field specs, instead of validated one by one: a
generic projection whose target takes the source's fields as they are is proven; one that
narrows a field, requires what the source may omit, or runs a projection function is not
(and is validated each time). Every projection proven valid really is valid."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from lxml import etree

from bus.catalog import Catalog
from bus.catalog.spec import Field
from bus.routing.router import RouteTable
from bus.stages.project import _fits, project, proven
from bus.synthetic.samples import sample_records


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def test_every_projection_proven_valid_is_valid_and_functions_are_never_proven(catalog: Catalog) -> None:
    routes = RouteTable.load(catalog=catalog)
    source = catalog.get("jumin.idou")
    verdicts: dict[str, bool] = {}
    for record in sample_records("jumin.idou", catalog, seed=11, n=400):
        for match in routes.route(record, record["municipality_code"], kind="jumin.idou", message_id="m"):
            verdicts[match.route.name] = ok = proven(match, source)
            if match.route.projection.function is not None:
                assert not ok
            xml = project(match, source)
            match.target.xml_schema.assertValid(etree.fromstring(xml))  # the proof holds on real changes
    assert any(verdicts.values()) and not all(verdicts.values())


def _f(name: str, optional: bool = False, **facets: str | int) -> Field:
    return Field(name, "string", optional=optional, facets=MappingProxyType(dict(facets)))


def test_a_target_that_narrows_a_field_or_requires_what_the_source_may_omit_is_not_proven() -> None:
    source = (_f("a", maxLength=10), _f("b", optional=True), _f("personal_number"))
    assert _fits((_f("a", maxLength=10), _f("b", optional=True)), source, frozenset())
    assert _fits((_f("a", maxLength=10), _f("z", optional=True)), source, frozenset())  # absent, optional
    assert not _fits((_f("a", maxLength=5),), source, frozenset())  # narrower
    assert not _fits((_f("b"),), source, frozenset())  # required, may be absent
    assert not _fits((_f("z"),), source, frozenset())  # required, never there
    assert not _fits((_f("personal_number"),), source, frozenset({"personal_number"}))  # required, dropped
    nested_source = (Field("r", "record", children=source),)
    assert not _fits((Field("r", "record", children=(_f("a", maxLength=5),)),), nested_source, frozenset())
    assert _fits((Field("r", "record", children=(_f("a", maxLength=10),)),), nested_source, frozenset())
