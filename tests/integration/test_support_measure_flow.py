"""A 支援措置 set and released without a 異動 (jumin.shien; 住民記録 standard 3.2, j420: "抑止設定及び
解除について宛名システム等にデータ連携できること") reaches, through a real bus (embedded broker, intake,
router, deliverers, HTTP sinks) and the in-process simulators, exactly the systems its routes name
— every system that takes changes of residents, v1 and v2 receivers alike, and the 団体内統合宛名
function — after the resident's change and in order, with no personal item a system may not see.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from simulated_bus import bus_to_simulators

from adapters.simulators import SYSTEMS, SimulatorCluster
from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.paths import schemas_dir
from bus.stages.intake import identity_of
from bus.validation.validator import validate

pytestmark = pytest.mark.integration

#: the systems routes/shien.yaml names: every one taking resident changes (7.2.3), the 団体内統合宛名 function too
NAMED = {"zei", "kokuho", "kaigo", "koki", "nenkin", "fukushi", "senkyo", "shugaku", "togo"}
PINNED_V2 = ("kokuho",)  # takes its resident changes as kokuho.jumin v2: still gets the 支援措置 message
CHANGE = schemas_dir() / "jumin.idou" / "1" / "samples" / "valid" / "tennyu.xml"  # 宛名番号 100000012345, 履歴 1
MEASURE = schemas_dir() / "jumin.shien" / "1" / "samples" / "valid" / "settei.xml"
CHILD = "100000077771"  # a resident of 8 whose changes the bus never saw: no kaigo route would take them


@dataclass
class Run:
    catalog: Catalog
    sims: SimulatorCluster
    keys: dict[str, str]  # label → message id
    answers: list[str]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return asyncio.run(_run(tmp_path_factory.mktemp("shien")))


def _measure(catalog: Catalog, **changes: Any) -> tuple[bytes, dict[str, Any]]:
    record = validate(MEASURE.read_bytes(), content_type="application/xml", catalog=catalog).record
    measure = dict(record["measure"])
    measure.update(changes.pop("measure", {}))
    record.update(changes, measure=measure)
    return catalog.get("jumin.shien").to_xml(record), record


async def _run(tmp: Path) -> Run:
    catalog = Catalog.load()
    change = CHANGE.read_bytes()
    settei, set_record = _measure(catalog, history_number=1)
    kaijo, release_record = _measure(catalog, history_number=1, event_number=2,
                                     measure={"action": "KAIJO", "end_date": set_record["processed_date"]})
    child, child_record = _measure(catalog, address_number=CHILD, household_number="20000777", history_number=4,
                                   integrated_address_number=None, measure={"provisional": True})
    async with SimulatorCluster(catalog=catalog) as sims:
        async with bus_to_simulators(sims, catalog, tmp / "state", pinned_v2=PINNED_V2) as (bus, settings):
            answers = [(await bus.intake.submit(raw, content_type="application/xml", source="jumin")).status
                       for raw in (change, settei, kaijo, child)]
            assert await bus.wait_idle(within=120)
    ids = Pseudonymizer(settings.bus.pseudonym_key)
    change_record = validate(change, content_type="application/xml", catalog=catalog).record
    keys = {label: ids.message_id(*identity_of(kind, record))  # type: ignore[misc]
            for label, kind, record in (("change", "jumin.idou", change_record), ("set", "jumin.shien", set_record),
                                        ("release", "jumin.shien", release_record),
                                        ("child", "jumin.shien", child_record))}
    return Run(catalog, sims, keys, answers)


def _at(run: Run, system: str, label: str) -> Any:
    return run.sims.state(system).messages.get(f"{run.keys[label]}.{system}")


def test_every_message_is_accepted(run: Run) -> None:
    assert run.answers == ["accepted"] * 4


def test_a_support_measure_reaches_exactly_the_systems_its_routes_name(run: Run) -> None:
    for label in ("set", "release", "child"):
        reached = {system for system in SYSTEMS if _at(run, system, label) is not None}
        assert reached == NAMED, label
    # 介護 took no change of the resident (35) nor would of the child (8); it gets their 支援措置:
    # when it comes to hold them (at 40, or as a 第1号's household member) it already knows
    assert _at(run, "kaigo", "change") is None
    assert _at(run, "kaigo", "set") is not None and _at(run, "kaigo", "child") is not None


def test_no_system_gets_a_personal_item_it_may_not_see(run: Run) -> None:
    for system in NAMED:
        for label in ("set", "release", "child"):
            message = _at(run, system, label)
            body = message.body.decode()
            for absent in ("personal_number", "<name>", "<address>", "birth_date", "塚本", "神田神保町"):
                assert absent not in body, (system, label, absent)
            if system == "togo":  # the 団体内統合宛名 function: the registry's kind, with the number it keys by
                assert message.kind == "jumin.shien"
                assert ("900000012345" in body) is (label != "child")
            else:
                assert message.kind == "shien.jumin", (system, label)
                assert "integrated_address_number" not in body and "900000012345" not in body
            assert "<address_number>" in body  # the system finds its own record of the person by it


def test_the_support_measure_follows_the_residents_change_and_the_release_follows_the_setting(run: Run) -> None:
    for system in NAMED - {"shugaku", "koki", "kaigo", "fukushi"}:  # those the 転入 of a 35-year-old reaches
        change, settei, kaijo = (_at(run, system, label) for label in ("change", "set", "release"))
        assert change is not None, system
        assert change.subject == settei.subject == kaijo.subject  # the resident's order line
        assert change.number < settei.number < kaijo.number, system
    kokuho = _at(run, "kokuho", "change")
    assert b"urn:renkei:schema:kokuho.jumin:2" in kokuho.body  # pinned to v2 for its changes
    assert b"urn:renkei:schema:shien.jumin:1" in _at(run, "kokuho", "set").body


def test_the_intermediate_server_and_the_portal_get_no_support_measure(run: Run) -> None:
    """The function takes it (3.2) and sends the 中間サーバー only the 副本 of the change."""
    chukan = run.sims.state("chukan").messages.values()
    assert len(chukan) == 1 and all(b"SupportMeasure" not in m.body for m in chukan)
    assert not run.sims.state("portal").messages and not run.sims.state("togo_oshirase").messages
