"""マイナポータル notices a parent acts on (児童手当, 出生) go to the 世帯主, not the child or the
newborn (issue 12): through the 団体内統合宛名 function, which addresses each notice — with the
householder's 団体内統合宛名番号 the message carries, else the 世帯主 it knows."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adapters.simulators.togo import IntegratedAddressFunction
from bus.catalog import Catalog
from bus.paths import routes_dir, schemas_dir
from bus.routing import RouteTable
from bus.routing.notices import recipient
from bus.validation.safe_xml import parse_xml

CATALOG = Catalog.load()
TABLE = RouteTable.load(routes_dir(), CATALOG)
HOUSEHOLDER = "700000000017"


def v2(name: str) -> dict[str, Any]:
    raw = (schemas_dir() / f"jumin.idou/2/samples/valid/{name}.xml").read_bytes()
    return copy.deepcopy(CATALOG.get("jumin.idou", 2).from_xml(parse_xml(raw)))


def notices(record: dict[str, Any], function: IntegratedAddressFunction | None = None) -> list[dict[str, Any]]:
    """The portal.oshirase records the function sends on for `record` (each one valid)."""
    function = function or IntegratedAddressFunction()
    portal = CATALOG.get("portal.oshirase")
    out = []
    for m in TABLE.route(record, record["municipality_code"], message_id="m-1"):
        assert m.route.destination != "portal"  # only through the 団体内統合宛名 function
        if m.route.destination == "togo_oshirase":
            m.target.xml_schema.assertValid(parse_xml(m.target.to_xml(m.record)))
            notice = function.notice(m.record)
            portal.xml_schema.assertValid(parse_xml(portal.to_xml(notice)))
            out.append(notice)
    return out


def test_the_birth_notice_goes_to_the_householder_not_the_newborn() -> None:
    record = v2("shussei")
    assert record["relationship"] != "世帯主"
    record["householder_integrated_address_number"] = HOUSEHOLDER
    [notice] = notices(record)
    assert notice["recipient_integrated_address_number"] == HOUSEHOLDER
    assert notice["recipient_integrated_address_number"] != record["integrated_address_number"]


def test_the_child_allowance_notice_of_a_child_who_moved_in_goes_to_the_householder() -> None:
    record = v2("shussei")  # a child of the household, now as a 転入 of a 6-year-old
    on = record["change"]["effective_date"]["reference_date"]
    record["change"]["reason"] = "TENNYU"
    record["birth_date"] = {"text": on.replace(year=on.year - 6).isoformat(),
                            "reference_date": on.replace(year=on.year - 6)}
    record["householder_integrated_address_number"] = HOUSEHOLDER
    [notice] = notices(record)
    assert notice["recipient_integrated_address_number"] == HOUSEHOLDER
    assert "児童手当" in notice["title"]


def test_without_the_householders_number_the_function_addresses_the_householder_it_knows() -> None:
    """The message does not name the parent (v1, or v2 without the item): the function's own
    household lookup does — here the 世帯主 of the newborn's household moved in before."""
    function = IntegratedAddressFunction()
    record = v2("shussei")
    function.apply({"municipality_code": record["municipality_code"], "address_number": "91",
                    "integrated_address_number": HOUSEHOLDER, "household_number": record["household_number"],
                    "relationship": "SETAINUSHI", "history_number": 1, "fukuhon_items": []})
    [notice] = notices(record, function)
    assert notice["recipient_integrated_address_number"] == HOUSEHOLDER


def test_a_household_the_function_does_not_know_leaves_the_notice_with_the_person() -> None:
    record = v2("shussei")
    [notice] = notices(record)
    assert notice["recipient_integrated_address_number"] == record["integrated_address_number"]


def test_a_message_with_no_number_at_all_still_gets_its_notice_from_the_function() -> None:
    """Before: the bus could not address it and sent no notice; the function assigns numbers."""
    record = v2("shussei")
    record["integrated_address_number"] = None
    function = IntegratedAddressFunction()
    [notice] = notices(record, function)
    assert notice["recipient_integrated_address_number"] == function.number_of(record["municipality_code"],
                                                                               record["address_number"])
    record["householder_integrated_address_number"] = HOUSEHOLDER
    assert [n["recipient_integrated_address_number"] for n in notices(record)] == [HOUSEHOLDER]


def test_the_notice_the_portal_gets_carries_no_address_number_household_or_name() -> None:
    record = v2("shussei")
    record["integrated_address_number"] = None  # the sample's equals its 宛名番号
    [notice] = notices(record)
    text = repr(notice)
    for value in (record["address_number"], record["household_number"], record["name"]["family_name"]):
        assert value and value not in text


def test_the_householders_own_change_is_addressed_to_them() -> None:
    record = {"relationship": "SETAINUSHI", "integrated_address_number": "123",
              "householder_integrated_address_number": "999"}
    assert recipient(record, "householder") == "123"
    assert recipient({**record, "relationship": "KO"}, "householder") == "999"
    assert recipient({**record, "relationship": "KO"}, "person") == "123"


def test_a_notice_with_no_addressee_is_refused_with_a_message_naming_no_person() -> None:
    with pytest.raises(ValueError, match="団体内統合宛名番号") as caught:
        recipient({"relationship": "KO", "integrated_address_number": None}, "householder")
    assert "None" not in str(caught.value)


def test_an_unknown_addressee_does_not_load(tmp_path: Any) -> None:
    from bus.errors import ConfigError

    (tmp_path / "portal.yaml").write_text(
        "routes:\n  - name: p\n    destination: portal\n    takes: jumin.idou\n    when: \"true\"\n"
        "    projection: {kind: portal.oshirase, function: portal_oshirase,\n"
        "                 params: {template: shussei, addressee: parent}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="addressee must be one of person, householder"):
        RouteTable.load(tmp_path, CATALOG)
