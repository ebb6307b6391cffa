"""`renkei demo --feed-version 2`: the registry writes jumin.idou v2, every 異動事由 of the
standard (1.2.2) among its changes, each valid as the bus checks it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bus.catalog import Catalog
from bus.demo import DemoOptions, demo_feed
from bus.synthetic.v2_reasons import V2_ONLY_REASONS
from bus.validation.validator import validate

CATALOG = Catalog.load()
FEED = list(demo_feed(CATALOG, DemoOptions(changes=3000, version=2)))
ACCEPTED = [item for item in FEED if item.expect == "accepted" and item.kind == "jumin.idou"]  # not the 支援措置


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
    v1 = [item for item in demo_feed(CATALOG, DemoOptions(changes=200)) if item.kind == "jumin.idou"]
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


def _routes_and_branches(feed: list[Any]) -> tuple[Counter[str], Counter[str]]:
    """Which routes the feed's accepted changes match, and which branch of a condition did it."""
    from bus.paths import routes_dir
    from bus.routing import RouteTable
    from bus.routing.context import build_context

    table = RouteTable.load(routes_dir(), CATALOG)
    routes: Counter[str] = Counter()
    branches: Counter[str] = Counter()
    for item in feed:
        if item.expect != "accepted" or item.record is None or item.kind != "jumin.idou":
            continue
        record = item.record
        routes.update(m.route.name for m in table.route(record, record["municipality_code"]))
        c = build_context(record, record["municipality_code"], CATALOG.codelists.group)
        branches.update(name for name, hit in (
            ("koki: 65-74 with 障害認定",
             65 <= c["age"] and c["age_by_birthday"] < 75 and c["koki_disability_certified"]),
            ("nenkin: 60+ 任意加入", c["age"] >= 60 and c["nenkin_category"] == "NINI_KANYU"),
            ("kaigo: under 40 in a 第1号 household", c["age"] < 40 and c["kaigo_household"]),
            ("fukushi: 18+ in a receiving household", c["age_at_fiscal_year_start"] >= 18 and c["jido_teate"]),
            ("senkyo: registered elector", c["elector_registered"] and c["group"] != "increase"),
            ("senkyo: adult move-in", c["group"] == "increase" and c["resident_type"] == "JAPANESE" and c["age"] >= 18
             and not c["elector_registered"]),
            ("shugaku: next year's entrant", c["age_at_fiscal_year_start"] == 5),
            ("portal: 18-year-old 児童 moved in", c["reason"] in ("TENNYU", "KOKUGAI_TENNYU") and c["age"] >= 18
             and c["age_at_fiscal_year_start"] < 18),
        ) if hit)
    return routes, branches


def test_the_demo_feeds_reach_every_route_that_takes_resident_changes() -> None:
    """The demo (1,000 changes, its default) exercises every shipped jumin.idou route, in v1 and v2."""
    from bus.paths import routes_dir
    from bus.routing import RouteTable

    table = RouteTable.load(routes_dir(), CATALOG)
    wanted = {r.name for r in table.routes if r.takes == "jumin.idou"}
    for version in (1, 2):
        routes, _ = _routes_and_branches(list(demo_feed(CATALOG, DemoOptions(changes=1000, version=version))))
        assert wanted - set(routes) == set(), version



def test_the_demos_pittari_batch_reaches_every_route_that_takes_applications() -> None:
    from bus.paths import routes_dir
    from bus.routing import RouteTable
    from bus.synthetic.pittari import pittari_applications

    table = RouteTable.load(routes_dir(), CATALOG)
    options = DemoOptions()
    hit = {m.route.name for a in pittari_applications(CATALOG, seed=options.seed, n=options.applications)
           for m in table.route(a, a["municipality_code"], kind="pittari.shinsei")}
    assert hit == {r.name for r in table.routes if r.takes == "pittari.shinsei"}


def test_the_v2_feed_takes_every_branch_of_the_eligibility_rules() -> None:
    _, branches = _routes_and_branches(ACCEPTED)
    assert {
        "koki: 65-74 with 障害認定", "nenkin: 60+ 任意加入", "kaigo: under 40 in a 第1号 household",
        "fukushi: 18+ in a receiving household", "senkyo: registered elector", "senkyo: adult move-in",
        "shugaku: next year's entrant",
    } - set(branches) == set(), branches


def test_the_v2_feed_has_the_items_a_standard_registry_writes() -> None:
    """Foreign residents with alphabet names and residence items, 不詳日, 支援措置, 妻の子, 住所コード,
    戸籍の表示, 住民となった年月日, 選挙人名簿登録; never 祖父/祖母 or 第2号."""
    records = [item.record for item in ACCEPTED if item.record]
    seen = Counter()
    for r in records:
        seen.update(k for k, hit in (
            ("alphabet name", bool(r["name"].get("name_alphabet"))),
            ("在留資格", bool((r.get("foreign_resident") or {}).get("status_of_residence"))),
            ("外国人住民となった日", bool((r.get("foreign_resident") or {}).get("became_resident_date"))),
            ("不詳日 of birth", r["birth_date"]["text"] != r["birth_date"]["reference_date"].isoformat()),
            ("不詳日 of a change", r["change"]["effective_date"]["text"]
             != r["change"]["effective_date"]["reference_date"].isoformat()),
            ("支援措置", bool(r.get("support_measure"))),
            ("妻の子", r.get("relationship") == "妻の子"),
            ("住所コード", bool((r.get("address") or {}).get("address_code"))),
            ("戸籍の表示", bool(r.get("domicile"))),
            ("住民となった年月日", bool(r.get("became_resident_date"))),
            ("選挙人名簿登録", bool(r.get("elector_registered"))),
        ) if hit)
        assert r.get("relationship") not in ("祖父", "祖母")
        assert (r.get("insurance") or {}).get("nenkin_category") != "DAI2GO"
    assert {"alphabet name", "在留資格", "外国人住民となった日", "不詳日 of birth", "不詳日 of a change", "支援措置",
            "妻の子", "住所コード", "戸籍の表示", "住民となった年月日", "選挙人名簿登録"} - set(seen) == set(), seen
