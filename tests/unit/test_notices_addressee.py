"""マイナポータル notices a parent acts on (児童手当, 出生) go to the 世帯主, not the child or the
newborn, when the message carries the householder's 団体内統合宛名番号 (issue 12)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

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


def notices(record: dict[str, Any]) -> list[dict[str, Any]]:
    matches = TABLE.route(record, record["municipality_code"], message_id="m-1")
    for m in matches:
        if m.route.destination == "portal":
            m.target.xml_schema.assertValid(parse_xml(m.target.to_xml(m.record)))
    return [m.record for m in matches if m.route.destination == "portal"]


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


def test_without_the_householders_number_the_notice_falls_back_to_the_person() -> None:
    """What the data cannot say (v1, or v2 without the item): the person of the change, as before."""
    record = v2("shussei")
    [notice] = notices(record)
    assert notice["recipient_integrated_address_number"] == record["integrated_address_number"]


def test_a_v2_message_with_no_number_at_all_gets_no_notice_and_no_invalid_one() -> None:
    """Before: the notice was addressed to 'None' and failed its own schema in the route stage."""
    record = v2("shussei")
    record["integrated_address_number"] = None
    assert notices(record) == []
    record["householder_integrated_address_number"] = HOUSEHOLDER
    assert [n["recipient_integrated_address_number"] for n in notices(record)] == [HOUSEHOLDER]


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
