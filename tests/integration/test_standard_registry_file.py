"""Issue 12, "Done when": a file of changes written the way a 標準準拠 registry writes them —
jumin.idou v2, compatibility ideographs, an IVS, an MJ+ character, a foreign resident with an
alphabet name, 不詳日, a 支援措置 subject, no 団体内統合宛名番号 — validates, routes and reaches
every system the law names and no other.

The file is an Avro object container file of jumin.idou v2 dropped into the inbox of a real bus
(embedded broker, intake, router, deliverers, HTTP sinks) delivering to the in-process
simulators. What each system must receive is written here per resident from the laws the
route files cite (not computed from the route table), and compared with what each simulator
applied, resident by resident.
"""

from __future__ import annotations

import asyncio
import copy
import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import fastavro
import pytest
from simulated_bus import bus_to_simulators

from adapters.simulators import SYSTEMS, SimulatorCluster
from adapters.sources.directory import DirectorySource, FileResult
from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.validation.safe_xml import parse_xml

pytestmark = pytest.mark.integration

CITY = "131016"
MJPLUS = "\U000f0100"  # a code point of the registered MJ+ set (schemas/charsets/mjplus.tsv)
COMPAT_TSUKA = "\ufa10"  # 塚, CJK compatibility ideograph: NFC would change it
IVS_TSUJI = "辻\U000e0100"  # 辻 with its Moji_Joho IVS
PINNED_V2 = ("kokuho", "fukushi")  # these receivers take the v2 projection kinds; the others v1
ALWAYS = {"zei", "togo", "chukan"}  # 地方税法 第294条; the 団体内統合宛名 function and, through it, the 副本


def _sample(catalog: Catalog, name: str) -> dict[str, Any]:
    ks = catalog.get("jumin.idou", 2)
    return ks.from_xml(parse_xml((ks.samples_dir / "valid" / f"{name}.xml").read_bytes()))


def _day(text: str, written: str | None = None) -> dict[str, Any]:
    """A RegistryDate: as the registry wrote it (a 不詳日 when `written` is given), and its internal date."""
    return {"text": written or text, "reference_date": date.fromisoformat(text)}


@dataclass(frozen=True)
class Resident:
    label: str
    record: dict[str, Any]
    law: frozenset[str]  # the systems the law names for this change


def _person(base: dict[str, Any], number: str, *, reason: str, on: str, born: str | dict[str, Any],
            relationship: str = "世帯主", since: str = "1990-01-01", notification: bool = False,
            on_written: str | None = None, notified: str | None = None, **items: Any) -> dict[str, Any]:
    record = copy.deepcopy(base)
    record.update(municipality_code=CITY, address_number=number, history_number=1, personal_number=None,
                  resident_code=None, integrated_address_number=None, relationship=relationship,
                  birth_date=_day(born) if isinstance(born, str) else born,
                  became_resident_date=_day(since), address_since=_day(since))
    told = date.fromisoformat(notified or on)
    record["change"] = {**record["change"], "reason": reason, "effective_date": _day(on, on_written),
                        "notified_date": told, "processed_date": told}
    if notification:  # one 届出 of the household's three persons (a 世帯単位 異動)
        record["change"].update(notification_id="131016-2025-000412", notification_size=3)
    insurance = dict(record["insurance"])
    insurance.update({k: False for k in ("kokuho", "kokuho_household", "kaigo", "kaigo_household", "koki",
                                         "koki_disability_certified", "jido_teate")}, nenkin_category="NONE")
    insurance.update(items.pop("insurance", {}))
    record["insurance"] = insurance
    record.update(items)
    return record


def registry_file(catalog: Catalog) -> list[Resident]:
    """One 届出 of a household of four moving in, a birth in it, a foreign resident from abroad,
    and residents at the eligibility boundaries (on 2025-04-01 unless said)."""
    jp = _sample(catalog, "hyojun_tennyu")  # 塚 U+FA10 in the family name, 辻+IVS in the given name
    fr = _sample(catalog, "gaikokujin_fushou_shien")  # alphabet name only, 不詳日 of birth, 支援措置
    moved_in = {"household_number": "20000456", "previous_address": jp["previous_address"], "notification": True}
    kokuho = {"kokuho": True, "kokuho_household": True}
    name = jp["name"]
    people = [
        # 39, Japanese, moves in: 国保 (転入, 国保世帯), 国民年金 第1号 (20–59), 選挙 (18+; the 転入 starts the count)
        Resident("householder", _person(jp, "100000012345", reason="TENNYU", on="2025-04-01", born="1985-06-12",
                                        since="2025-04-01", **moved_in,
                                        insurance={**kokuho, "nenkin_category": "DAI1GO"}),
                 frozenset(ALWAYS | {"kokuho", "nenkin", "senkyo"})),
        # 9, 子, an MJ+ character in the name: 児童手当 (児童), 学齢簿, 国保; the 児童手当 notice goes out
        Resident("child", _person(jp, "100000012353", reason="TENNYU", on="2025-04-01", born="2015-08-01",
                                  relationship="子", since="2025-04-01", **moved_in, insurance=kokuho,
                                  name={**name, "given_name": f"{MJPLUS}子", "given_name_kana": "キチコ"}),
                 frozenset(ALWAYS | {"kokuho", "fukushi", "shugaku", "togo_oshirase", "portal"})),
        # 妻の子, reaches 18 on the day of the move-in: still a 児童 to 2026-03-31 (児童手当法 第3条第1項), so the
        # 児童手当 notice is owed; an elector-to-be (公職選挙法 第21条: 18, the 転入 starts the count); not 学齢
        Resident("stepchild 18 today", _person(jp, "100000012361", reason="TENNYU", on="2025-04-01",
                                               born="2007-04-02", relationship="妻の子", since="2025-04-01",
                                               **moved_in, insurance=kokuho),
                 frozenset(ALWAYS | {"kokuho", "fukushi", "senkyo", "togo_oshirase", "portal"})),
        # a birth in that household: 国保 (出生), 児童手当, the 出生 notice; not yet 学齢
        Resident("newborn", _person(jp, "100000012388", reason="SHUSSEI", on="2025-05-10", born="2025-05-10",
                                    relationship="子", since="2025-05-10", household_number="20000456",
                                    insurance=kokuho),
                 frozenset(ALWAYS | {"kokuho", "fukushi", "togo_oshirase", "portal"})),
        # foreign, 国外転入, 不詳日, 支援措置: 国保, 国民年金 (20–59 whatever the nationality); never 選挙
        Resident("foreign resident", _person(fr, "41200087", reason="KOKUGAI_TENNYU", on="2025-04-03",
                                             born=fr["birth_date"], since="2025-04-01",
                                             insurance={**kokuho, "nenkin_category": "DAI1GO"}),
                 frozenset(ALWAYS | {"kokuho", "nenkin"})),
        # 75 reached today (the day before the birthday): 後期 from the birthday itself (高確法 第52条), not yet
        Resident("75 tomorrow", _person(jp, "100000020001", reason="TENKYO", on="2025-04-01", born="1950-04-02",
                                        elector_registered=True, insurance={"kaigo": True}),
                 frozenset(ALWAYS | {"kaigo", "senkyo"})),
        Resident("75th birthday", _person(jp, "100000020028", reason="TENKYO", on="2025-04-01", born="1950-04-01",
                                          elector_registered=True, insurance={"kaigo": True}),
                 frozenset(ALWAYS | {"kaigo", "koki", "senkyo"})),
        # 65 reached today with the 広域連合's 障害認定 (高確法 第50条第2号); 国民年金 over at 60
        Resident("65 with 障害認定", _person(jp, "100000020036", reason="TENKYO", on="2025-04-01", born="1960-04-02",
                                          elector_registered=True,
                                          insurance={"kaigo": True, "koki_disability_certified": True}),
                 frozenset(ALWAYS | {"kaigo", "koki", "senkyo"})),
        # 40 reached today (介護保険法 第9条第2号, 第10条); 国民年金 第1号
        Resident("40 today", _person(jp, "100000020044", reason="TENKYO", on="2025-04-01", born="1985-04-02",
                                     elector_registered=True, insurance={"nenkin_category": "DAI1GO"}),
                 frozenset(ALWAYS | {"kaigo", "nenkin", "senkyo"})),
        # 60 reached today: 第1号 ends (国民年金法 第9条); 任意加入 keeps 国民年金
        Resident("60, 任意加入", _person(jp, "100000020052", reason="TENKYO", on="2025-04-01", born="1965-04-02",
                                      elector_registered=True, insurance={"nenkin_category": "NINI_KANYU"}),
                 frozenset(ALWAYS | {"kaigo", "nenkin", "senkyo"})),
        Resident("60, not 任意加入", _person(jp, "100000020079", reason="TENKYO", on="2025-04-01", born="1965-04-02",
                                          elector_registered=True),
                 frozenset(ALWAYS | {"kaigo", "senkyo"})),
        # 18 on a 31 March: the last day of 児童 is that day itself; a 転居 the day after reaches no 児童手当
        Resident("18 since 31 March", _person(jp, "100000020087", reason="TENKYO", on="2025-04-01",
                                              born="2007-04-01", since="2007-04-01"),
                 frozenset(ALWAYS | {"senkyo"})),
        # a death on a 不詳日 (令和7年3月上旬) of an 88-year-old elector: every system that held them
        Resident("death on an unknown day", _person(jp, "100000020095", reason="SHIBOU", on="2025-03-05",
                                                    on_written="令和7年3月上旬", notified="2025-03-10",
                                                    born="1936-09-08", resident_status="SHIBOU",
                                                    elector_registered=True, insurance={"kaigo": True, "koki": True}),
                 frozenset(ALWAYS | {"kaigo", "koki", "senkyo"})),
    ]
    return people


def write_avro(path: Path, catalog: Catalog, records: list[dict[str, Any]]) -> None:
    """The file as a registry writes it: an Avro object container file with the v2 schema."""
    ks = catalog.get("jumin.idou", 2)
    schema = fastavro.parse_schema(ks.avro_schema)
    rows = [fastavro.schemaless_reader(io.BytesIO(ks.to_avro(r)), schema) for r in records]
    with (path.parent / f".{path.name}.part").open("wb") as fh:
        fastavro.writer(fh, schema, rows)
    (path.parent / f".{path.name}.part").rename(path)


@dataclass
class Delivered:
    result: FileResult
    arrived: dict[str, set[str]]  # system → labels of the residents it applied
    sims: SimulatorCluster
    catalog: Catalog


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Delivered:
    return asyncio.run(deliver(tmp_path_factory.mktemp("standard")))


async def deliver(tmp: Path) -> Delivered:
    """Drop the file into the inbox of a running bus; wait until every delivery is done."""
    catalog = Catalog.load()
    people = registry_file(catalog)
    inbox = tmp / "inbox"
    inbox.mkdir()
    write_avro(inbox / "idou-20250401.avro", catalog, [p.record for p in people])
    async with SimulatorCluster(catalog=catalog) as sims:
        async with bus_to_simulators(sims, catalog, tmp / "state", pinned_v2=PINNED_V2) as (bus, settings):
            [result] = await DirectorySource(inbox, bus.intake, pattern="*.avro", source="jumin",
                                             catalog=catalog).run_once()
            assert await bus.wait_idle(within=120)
        pseudonyms = Pseudonymizer(settings.bus.pseudonym_key)
        label_of = {pseudonyms.message_id(CITY, p.record["address_number"], 1): p.label for p in people}
        arrived: dict[str, set[str]] = {name: set() for name in SYSTEMS}
        for name in SYSTEMS:
            for key in sims.state(name).messages:
                arrived[name].add(label_of.get(key.rsplit(".", 1)[0], f"unknown {key}"))
        return Delivered(result, arrived, sims, catalog)


def test_the_standard_registrys_file_is_accepted_whole_as_jumin_idou_v2(delivered: Delivered) -> None:
    assert delivered.result.status == "processed", delivered.result.detail
    assert delivered.result.counts == {"accepted": 13, "duplicate": 0, "rejected": 0}
    assert delivered.result.detail["kind"] == "jumin.idou"


def test_every_resident_reaches_every_system_the_law_names_and_no_other(delivered: Delivered) -> None:
    people = registry_file(delivered.catalog)
    for system in SYSTEMS:
        owed = {p.label for p in people if system in p.law}
        assert delivered.arrived[system] == owed, system


def test_the_characters_arrive_as_the_registry_wrote_them(delivered: Delivered) -> None:
    """zei takes v1, fukushi v2: both get the compatibility ideograph, the IVS and the MJ+ character."""
    for system in ("zei", "fukushi"):
        bodies = [m.body.decode() for m in delivered.sims.state(system).messages.values()]
        assert any(f"{COMPAT_TSUKA}本" in b for b in bodies), system
        assert any(IVS_TSUJI in b for b in bodies), system
        assert any(f"{MJPLUS}子" in b for b in bodies), system
        assert all("塚本" not in b for b in bodies), system  # never NFC-normalised to the unified 塚


def test_a_v2_receiver_gets_the_unknown_day_and_the_support_measure_as_written(delivered: Delivered) -> None:
    ks = delivered.catalog.get("kokuho.jumin", 2)
    records = [ks.from_xml(parse_xml(m.body)) for m in delivered.sims.state("kokuho").messages.values()]
    [foreign] = [r for r in records if r.get("nationality") == "VN"]
    assert foreign["birth_date"]["text"] == "1990年月日不詳"
    assert foreign["support_measure"] is True
    assert foreign["name"]["name_alphabet"] == "NGUYEN VAN AN"


def test_the_function_numbered_everyone_and_the_intermediate_server_got_no_address_number(
    delivered: Delivered,
) -> None:
    """No 統合宛名番号 in the file: the function assigns one per person and keys the 副本 by it."""
    function = delivered.sims.state("togo").togo
    assert function is not None
    assert len({n for (city, _), n in function.numbers.items() if city == CITY}) == 13
    for message in delivered.sims.state("chukan").messages.values():
        body = message.body.decode()
        assert "100000012345" not in body and "<address_number>" not in body
        assert "<integrated_address_number>" in body
