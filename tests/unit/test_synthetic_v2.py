"""Synthetic jumin.idou v2 (issue 12): valid, with foreign residents' items, 不詳日, 支援措置,
the standard's 続柄 and no 第2号."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from bus.catalog import Catalog
from bus.errors import ValidationFailed
from bus.synthetic import Registry
from bus.synthetic.v2 import to_v2
from bus.validation import validate


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    reg = Registry(seed=2026)
    return [to_v2(r) for r in [*reg.snapshot(), *reg.events(600)]]


def test_every_synthetic_v2_record_is_valid(catalog: Catalog, records: list[dict[str, Any]]) -> None:
    ks = catalog.get("jumin.idou", 2)
    bad = []
    for record in records:
        try:
            validate(ks.to_xml(record), content_type="application/xml", catalog=catalog)
        except ValidationFailed as exc:
            bad.append([str(i) for i in exc.issues])
    assert bad == []


def test_synthetic_v2_has_the_items_a_standard_registry_sends(records: list[dict[str, Any]]) -> None:
    seen: Counter[str] = Counter()
    for r in records:
        seen["foreign_items"] += r["foreign_resident"] is not None
        seen["alphabet_name"] += r["name"]["name_alphabet"] is not None
        seen["no_kana"] += r["name"]["family_name_kana"] is None
        seen["unknown_birth"] += not r["birth_date"]["text"][:4].isdigit()
        seen["unknown_death_day"] += r["change"]["reason"] == "SHIBOU" and not r["change"]["effective_date"][
            "text"][:4].isdigit()
        seen["support_measure"] += r["support_measure"]
        seen["grandparent_chain"] += r["relationship"] in ("父の父", "父の母")
        seen["dai2go"] += r["insurance"]["nenkin_category"] == "DAI2GO"
        seen["sofu"] += r["relationship"] in ("祖父", "祖母")
    assert all(seen[k] > 0 for k in ("foreign_items", "alphabet_name", "no_kana", "unknown_birth",
                                      "unknown_death_day", "support_measure", "grandparent_chain")), seen
    assert seen["dai2go"] == 0 and seen["sofu"] == 0


def test_the_same_v1_record_gives_the_same_v2_record(records: list[dict[str, Any]]) -> None:
    reg = Registry(seed=2026)
    first = next(iter(reg.snapshot()))
    assert to_v2(first) == to_v2(first) == records[0]


def test_every_synthetic_v2_record_routes_to_valid_projections(catalog: Catalog,
                                                                records: list[dict[str, Any]]) -> None:
    """Alphabet-only names, no 振り仮名, 不詳日: every projection still validates for its kind."""
    from bus.routing import RouteTable
    from bus.validation.safe_xml import parse_xml

    table = RouteTable.load(None, catalog)
    checked = 0
    for record in records[::3]:
        for m in table.route(record, record["municipality_code"], message_id="m"):
            m.target.xml_schema.assertValid(parse_xml(m.target.to_xml(m.record)))
            checked += 1
    assert checked > len(records) // 3
