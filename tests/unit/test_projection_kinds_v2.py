"""Version 2 of the projection kinds and of chukan.fukuhon (issue 12): the receivers that pin
`schema_version = 2` get the standard's items — 不詳日 as written, 外国人住民の事項, 支援措置,
振り仮名 with its 確認 state, 住所コード — while the others keep v1; a v1 message is upgraded
before a v2 projection; the 副本 v2 carries the household."""

from __future__ import annotations

import copy
import dataclasses
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "contract"))
from sink_contract_support import envelope

from adapters.simulators import SimulatorCluster, create_app
from adapters.transports.http import envelope_headers
from bus.catalog import Catalog
from bus.config_check import check_pins
from bus.errors import ConfigError
from bus.paths import routes_dir, schemas_dir
from bus.ports import Outbound
from bus.routing import RouteTable
from bus.settings import Settings
from bus.validation.safe_xml import parse_xml

CATALOG = Catalog.load()
TABLE = RouteTable.load(routes_dir(), CATALOG)
V2_KINDS = ("zei.jumin", "kokuho.jumin", "kaigo.jumin", "koki.jumin", "nenkin.jumin", "fukushi.jumin",
            "senkyo.jumin", "shugaku.jumin", "chukan.fukuhon", "togo.jumin")


def sample(kind: str, version: int, name: str) -> dict[str, Any]:
    raw = (schemas_dir() / f"{kind}/{version}/samples/valid/{name}.xml").read_bytes()
    return copy.deepcopy(CATALOG.get(kind, version).from_xml(parse_xml(raw)))


def pinned(record: dict[str, Any], destination: str, version: int) -> dict[str, Any]:
    """What a destination pinned to `version` gets for `record` (validated against its XSD)."""
    [match] = [m for m in TABLE.route(record, record["municipality_code"], message_id="m")
               if m.route.destination == destination]
    got = TABLE.pinned(match, version, record, record["municipality_code"], "m")
    assert got.target.version == version
    got.target.xml_schema.assertValid(parse_xml(got.target.to_xml(got.record)))
    return got.record


@pytest.mark.parametrize("kind", V2_KINDS)
def test_each_v2_kind_is_a_preview_a_destination_must_pin(kind: str) -> None:
    assert CATALOG.versions(kind) == [1, 2]
    assert CATALOG.get(kind).version == 1  # the default stays v1: nobody gets v2 unasked
    assert CATALOG.get(kind, 2).spec.preview and CATALOG.get(kind, 2).spec.source_version == 2
    names = {f.name for f in CATALOG.get(kind, 2).fields}
    assert "support_measure" in names  # every receiver must restrict disclosure under a 支援措置
    assert "foreign_resident" in names or kind == "senkyo.jumin"  # 選挙人名簿: Japanese nationals only


@pytest.mark.parametrize("destination", ["zei", "kokuho", "nenkin", "togo"])
def test_a_pinned_v2_receiver_gets_the_unknown_date_as_written_and_the_foreign_residents_items(
        destination: str) -> None:
    record = sample("jumin.idou", 2, "gaikokujin_fushou_shien")
    v2 = pinned(record, destination, 2)
    assert v2["birth_date"] == record["birth_date"] and v2["birth_date"]["text"] == "1990年月日不詳"
    assert v2["support_measure"] is True
    assert v2["foreign_resident"]["category"] == record["foreign_resident"]["category"]
    assert v2["name"]["name_alphabet"] == "NGUYEN VAN AN" and v2["relationship"] == "世帯主"
    v1 = pinned(record, destination, 1)  # the same change to a v1 receiver: the reference date only
    assert v1["birth_date"] == record["birth_date"]["reference_date"]
    assert "support_measure" not in v1 and "foreign_resident" not in v1


def test_the_furigana_state_and_the_address_code_reach_a_v2_receiver_not_a_v1_one() -> None:
    record = sample("jumin.idou", 2, "hyojun_tennyu")
    record["name"]["kana_status"] = record["name"].get("kana_status") or "CONFIRMED"
    record["address"]["address_code"] = "13101000100"
    v2 = pinned(record, "zei", 2)
    assert v2["name"]["kana_status"] == record["name"]["kana_status"]
    assert v2["address"]["address_code"] == "13101000100"
    v1 = pinned(record, "zei", 1)
    assert "kana_status" not in v1["name"] and "address_code" not in v1["address"]


def test_a_v1_message_is_upgraded_before_a_v2_projection() -> None:
    record = sample("jumin.idou", 1, "tennyu")
    v2 = pinned(record, "kokuho", 2)
    assert v2["birth_date"] == {"text": record["birth_date"].isoformat(), "reference_date": record["birth_date"]}
    assert v2["change"]["reason"] == "TENNYU" and v2["support_measure"] is False
    assert "welfare" not in str(v2)  # not a 住民票 item: dropped by the upgrade


def test_a_destination_may_pin_version_2_now_and_no_version_beyond(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[destinations.kokuho]\ntransport = "http"\nurl = "http://127.0.0.1:9/m"\n'
                      "schema_version = 2\n", encoding="utf-8")
    check_pins(Settings.load(config, env={}), TABLE.routes, CATALOG.versions)  # kokuho.jumin has a version 2
    config.write_text(config.read_text(encoding="utf-8").replace("= 2", "= 3"), encoding="utf-8")
    with pytest.raises(ConfigError, match="schema_version = 3"):
        check_pins(Settings.load(config, env={}), TABLE.routes, CATALOG.versions)


async def test_a_v2_change_at_the_function_gives_the_intermediate_server_the_v2_fukuhon_with_the_household(
        ) -> None:
    cluster = SimulatorCluster(["togo", "chukan"], catalog=CATALOG)  # wired, not started
    householder = pinned(sample("jumin.idou", 2, "gaikokujin_fushou_shien"), "togo", 2)
    member = {**copy.deepcopy(householder), "address_number": "41200095", "relationship": "妻",
              "integrated_address_number": None}
    app = create_app("togo", catalog=CATALOG, state=cluster.state("togo"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://togo") as client:
        for i, record in enumerate((householder, member)):
            env = dataclasses.replace(envelope("togo.jumin", "togo", message_id=f"m{i}", sequence=i + 1),
                                      schema_version=2, municipality=record["municipality_code"])
            m = Outbound(env, record, CATALOG.get("togo.jumin", 2).to_xml(record))
            answer = await client.post("/messages", content=m.xml,
                                       headers={**envelope_headers(m), "Content-Type": "application/xml"})
            assert answer.json()["status"] == "applied", answer.text
    body = cluster.state("chukan").messages["m1.chukan"].body
    ks = CATALOG.get("chukan.fukuhon", 2)
    ks.xml_schema.assertValid(parse_xml(body))
    fukuhon = ks.from_xml(parse_xml(body))
    numbers = cluster.state("togo").togo.numbers  # type: ignore[union-attr]
    head = numbers[(householder["municipality_code"], householder["address_number"])]
    assert fukuhon["relationship"] == "妻" and fukuhon["householder_integrated_address_number"] == head
    assert sorted(fukuhon["household_members"]) == sorted([head, fukuhon["integrated_address_number"]])
    assert fukuhon["birth_date"]["text"] == "1990年月日不詳" and fukuhon["support_measure"] is True
    assert b"41200095" not in body and b"personal_number" not in body  # no 宛名番号, no 個人番号
