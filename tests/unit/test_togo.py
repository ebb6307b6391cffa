"""The 団体内統合宛名 function (issue 12): numbers for every person, the 副本 of 住民票関係情報
with the household, and the only path to the 中間サーバー."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "contract"))
from sink_contract_support import outbound

from adapters.simulators import SimulatorState, create_app
from adapters.simulators.togo import IntegratedAddressFunction
from adapters.transports.http import envelope_headers
from bus.catalog import Catalog
from bus.validation.safe_xml import parse_xml


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def sample(catalog: Catalog, name: str) -> dict[str, Any]:
    ks = catalog.get("togo.jumin")
    return ks.from_xml(parse_xml((ks.samples_dir / "valid" / f"{name}.xml").read_bytes()))


def test_each_person_gets_one_number_the_registrys_when_it_has_one(catalog: Catalog) -> None:
    function = IntegratedAddressFunction()
    change = sample(catalog, "tennyu")
    given = change["integrated_address_number"]
    assert function.apply(change) is not None
    assert function.number_of(change["municipality_code"], change["address_number"]) == given
    newcomer = {**copy.deepcopy(change), "address_number": "55", "integrated_address_number": None}
    first = function.apply(newcomer)
    again = function.apply({**newcomer, "history_number": 2})
    assert first is not None and again is not None
    assert first.integrated_address_number == again.integrated_address_number != given


def test_a_household_change_is_a_fukuhon_update_and_moves_the_member(catalog: Catalog) -> None:
    """世帯分離: the 副本 (住民票関係情報) records the new household; the old one loses the member."""
    function = IntegratedAddressFunction()
    split = sample(catalog, "setai_bunri")
    before = {**copy.deepcopy(split), "household_number": "999", "fukuhon_items": ["address"]}
    function.apply(before)
    update = function.apply(split)
    assert update is not None and update.items == ("household",)
    number = update.integrated_address_number
    assert function.fukuhon[number]["household_number"] == split["household_number"]
    assert number not in function.households[(split["municipality_code"], "999")]
    assert "address_number" not in update.fukuhon and "personal_number" not in update.fukuhon


class _Households(dict[tuple[str, str], dict[str, str]]):
    """The function's households, counting every walk over all of them."""

    walks = 0

    def values(self) -> Any:
        _Households.walks += 1
        return super().values()

    def items(self) -> Any:
        _Households.walks += 1
        return super().items()

    def __iter__(self) -> Any:
        _Households.walks += 1
        return super().__iter__()


def test_a_change_finds_the_persons_household_without_walking_every_household(catalog: Catalog) -> None:
    """The n-th change looked at all n households before it (the demo's togo simulator slowed as it
    ran); now one lookup. Moving, leaving and the householder lookup are as before."""
    function = IntegratedAddressFunction(households=_Households())
    base = sample(catalog, "setai_bunri")
    for i in range(200):  # 200 people, each in a household of their own
        function.apply({**copy.deepcopy(base), "address_number": f"{i:010d}", "household_number": f"h{i}",
                        "integrated_address_number": None, "relationship": "SETAINUSHI"})
    _Households.walks = 0
    mover = {**copy.deepcopy(base), "address_number": f"{7:010d}", "household_number": "h8",
             "integrated_address_number": None, "relationship": "KO"}
    function.apply(mover)
    assert _Households.walks == 0
    number = function.number_of(base["municipality_code"], f"{7:010d}")
    municipality = base["municipality_code"]
    assert number not in function.households[(municipality, "h7")]
    assert function.households[(municipality, "h8")][number] == "KO"
    assert function.householder(municipality, "h8") == function.number_of(municipality, f"{8:010d}")
    function.apply({**mover, "resident_status": "REMOVED"})  # leaves the household
    assert number not in function.households[(municipality, "h8")]
    function.clear()
    assert function.member_of == {} and function.households == {}


def test_a_change_that_alters_no_fukuhon_item_sends_no_update(catalog: Catalog) -> None:
    function = IntegratedAddressFunction()
    assert function.apply(sample(catalog, "kojin_bango_henko")) is None
    assert function.updates == []


async def test_the_togo_simulator_applies_each_fukuhon_update_at_the_intermediate_server(catalog: Catalog) -> None:
    chukan = SimulatorState("chukan")
    togo_app = create_app("togo", catalog=catalog)
    togo: SimulatorState = togo_app.state.simulator
    togo.downstream = chukan
    messages = [outbound("togo.jumin", "togo", record=sample(catalog, name), message_id=f"m{i}")
                for i, name in enumerate(("tennyu", "setai_bunri", "kojin_bango_henko"))]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=togo_app), base_url="http://togo") as client:
        for m in messages:
            sent = {**envelope_headers(m), "Content-Type": "application/xml"}
            answer = await client.post("/messages", content=m.xml, headers=sent)
            assert answer.json()["status"] == "applied", answer.text
    assert togo.effects == 3
    assert sorted(chukan.messages) == ["m0.chukan", "m1.chukan"]  # 個人番号変更 alters no 副本 item
    for held in chukan.messages.values():
        body = held.body.decode()
        assert "<integrated_address_number>" in body and "address_number>" not in body.replace(
            "integrated_address_number>", "") and "personal_number" not in body
        catalog.get("chukan.fukuhon").xml_schema.assertValid(parse_xml(held.body))


async def test_notices_go_through_the_function_which_addresses_them_to_the_householder_it_knows(
        catalog: Catalog) -> None:
    """お知らせ go through the 団体内統合宛名 function (togo_oshirase, sharing the function of
    togo in a cluster): it finds the 世帯主 of the household from the changes it holds and
    applies portal.oshirase at the portal simulator, with no 宛名番号 or 世帯番号."""
    from adapters.simulators import SimulatorCluster

    cluster = SimulatorCluster(["togo", "togo_oshirase", "portal"], catalog=catalog)  # wired, not started
    togo, notices, portal = (cluster.state(n) for n in ("togo", "togo_oshirase", "portal"))
    assert notices.togo is togo.togo and notices.downstream is portal
    householder = {**sample(catalog, "tennyu"), "relationship": "SETAINUSHI"}
    oshirase = catalog.get("togo.oshirase")
    request = oshirase.from_xml(parse_xml((oshirase.samples_dir / "valid" / "shussei.xml").read_bytes()))
    householder["household_number"] = request["household_number"]
    householder["municipality_code"] = request["municipality_code"]
    posts = [("togo", outbound("togo.jumin", "togo", record=householder, message_id="m0")),
             ("togo_oshirase", outbound("togo.oshirase", "togo_oshirase", record=request, message_id="m1"))]
    for system, m in posts:
        app = create_app(system, catalog=catalog, state=cluster.state(system))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
            sent = {**envelope_headers(m), "Content-Type": "application/xml"}
            answer = await client.post("/messages", content=m.xml, headers=sent)
            assert answer.json()["status"] == "applied", answer.text
    assert sorted(portal.messages) == ["m1.portal"]
    body = portal.messages["m1.portal"].body
    catalog.get("portal.oshirase").xml_schema.assertValid(parse_xml(body))
    got = catalog.get("portal.oshirase").from_xml(parse_xml(body))
    assert got["recipient_integrated_address_number"] == householder["integrated_address_number"]
    assert request["address_number"].encode() not in body and request["household_number"].encode() not in body
    cluster.reset()
    assert notices.togo is togo.togo and togo.togo is not None and togo.togo.numbers == {}
