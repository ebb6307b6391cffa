"""jumin.idou v2 messages route like v1 ones: facts from the standard's items, projections
to the (v1) projection kinds through bus.catalog.upgrade.v1_view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bus.catalog import Catalog
from bus.catalog.upgrade import upgrade_jumin_idou
from bus.paths import routes_dir, schemas_dir
from bus.routing import RouteTable
from bus.validation.safe_xml import parse_xml

V2_SAMPLES = sorted((schemas_dir() / "jumin.idou/2/samples/valid").glob("*.xml"))


CATALOG = Catalog.load()
TABLE = RouteTable.load(routes_dir(), CATALOG)


def load(catalog: Catalog, path: Path, version: int) -> dict[str, Any]:
    return catalog.get("jumin.idou", version).from_xml(parse_xml(path.read_bytes()))


@pytest.mark.parametrize("path", V2_SAMPLES, ids=lambda p: p.stem)
def test_every_projection_of_a_v2_sample_is_valid_for_its_target(path: Path) -> None:
    table, catalog = TABLE, CATALOG
    """Foreign residents without 振り仮名, alphabet-only names and 不詳日 included."""
    record = load(catalog, path, 2)
    matches = table.route(record, record["municipality_code"], message_id="m-1")
    assert matches
    for m in matches:
        m.target.xml_schema.assertValid(parse_xml(m.target.to_xml(m.record)))


def test_a_v1_message_and_its_v2_conversion_reach_the_same_destinations() -> None:
    table, catalog = TABLE, CATALOG
    for path in sorted((schemas_dir() / "jumin.idou/1/samples/valid").glob("*.xml")):
        v1 = load(catalog, path, 1)
        v2 = upgrade_jumin_idou(v1)
        where = v1["municipality_code"]
        assert {m.route.name for m in table.route(v2, where)} == {m.route.name for m in table.route(v1, where)}, \
            path.name


def test_a_v2_only_fact_decides_a_route() -> None:
    """A 70-year-old with a 障害認定 (v2 item) reaches the 広域連合; without it, not."""
    table, catalog = TABLE, CATALOG
    record = load(catalog, V2_SAMPLES[0].parent / "tenkyo.xml", 2)
    record["birth_date"] = {"text": "昭和30年頃", "reference_date": record["change"]["effective_date"][
        "reference_date"].replace(year=record["change"]["effective_date"]["reference_date"].year - 70)}
    record["insurance"]["koki"] = False
    where = record["municipality_code"]
    assert "koki" not in {m.route.destination for m in table.route(record, where)}
    record["insurance"]["koki_disability_certified"] = True
    assert "koki" in {m.route.destination for m in table.route(record, where)}
