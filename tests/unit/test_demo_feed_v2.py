"""`renkei demo --feed-version 2`: the registry writes jumin.idou v2, every 異動事由 of the
standard (1.2.2) among its changes, each valid as the bus checks it."""

from __future__ import annotations

from collections import Counter

from bus.catalog import Catalog
from bus.demo import DemoOptions, demo_feed
from bus.synthetic.v2_reasons import V2_ONLY_REASONS
from bus.validation.validator import validate

CATALOG = Catalog.load()
FEED = list(demo_feed(CATALOG, DemoOptions(changes=3000, version=2)))
ACCEPTED = [item for item in FEED if item.expect == "accepted"]


def test_the_v2_feed_covers_every_v2_change_reason() -> None:
    reasons = Counter(item.record["change"]["reason"] for item in ACCEPTED if item.record)
    assert set(CATALOG.codelists.symbols("ChangeReason2")) - set(reasons) == set()
    assert V2_ONLY_REASONS <= set(reasons)


def test_every_change_of_the_v2_feed_validates_as_v2() -> None:
    for item in ACCEPTED:
        got = validate(item.body, content_type="application/xml", catalog=CATALOG)
        assert got.kind_schema.version == 2
        assert got.record["change"]["reason"] == item.record["change"]["reason"]  # type: ignore[index]


def test_the_invalid_variants_of_the_v2_feed_stay_v1_and_are_refused_with_their_code() -> None:
    invalid = [item for item in FEED if item.expect not in ("accepted", "duplicate")]
    assert invalid
    for item in invalid:
        assert b"urn:renkei:schema:jumin.idou:1" in item.body


def test_the_v1_feed_is_unchanged_by_the_option() -> None:
    v1 = list(demo_feed(CATALOG, DemoOptions(changes=200)))
    assert all(b"urn:renkei:schema:jumin.idou:1" in item.body for item in v1)


def test_notices_of_the_v2_feed_reach_the_householder_of_a_child() -> None:
    """The 児童手当 / 出生 notices go to the 世帯主 (issue 12): the 団体内統合宛名 function
    addresses them — the 世帯主 the registry names, else the one it knows in the household."""
    from adapters.simulators.togo import IntegratedAddressFunction
    from bus.paths import routes_dir
    from bus.routing import RouteTable

    table = RouteTable.load(routes_dir(), CATALOG)
    function = IntegratedAddressFunction()
    to_householder = to_person = 0
    for item in ACCEPTED:
        record = item.record
        assert record is not None
        matches = table.route(record, record["municipality_code"])
        for m in matches:  # the function sees the change (its numbers and households) first
            if m.route.destination == "togo":
                function.apply(m.record)
        for m in matches:
            assert m.route.destination != "portal"
            if m.route.destination != "togo_oshirase":
                continue
            to = function.notice(m.record)["recipient_integrated_address_number"]
            householder = function.householder(record["municipality_code"], record["household_number"])
            if record["relationship"] != "世帯主" and record.get("householder_integrated_address_number"):
                assert to == record["householder_integrated_address_number"]
            if to in (record.get("householder_integrated_address_number"), householder) and to is not None:
                to_householder += 1
            else:
                to_person += 1
    assert to_householder > 0
    assert to_householder > to_person
