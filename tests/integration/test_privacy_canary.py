"""The privacy proof: a canary resident with distinctive values is sent through every path —
accepted, duplicate, rejected, retried, dead-lettered, held, replayed — with the bus logging
at debug level, and every operator command is run on it. Then the logs, the audit store (its
raw file bytes), every CLI output and every error message the sources got are searched for
each canary value in plain text. None may be there.

The canary's values are chosen to be found if they leak: 12-digit numbers with valid check
digits, and a name, kana and address no synthetic resident has.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import free_ports
from run_support import PSEUDONYM_KEY, BusProcess, eventually, renkei

from adapters.simulators import SYSTEMS
from adapters.simulators.state import read_received
from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.paths import routes_dir
from bus.routing.router import RouteTable
from bus.synthetic.samples import sample_records
from bus.validation.checkdigits import personal_number_check_digit, resident_code_check_digit

pytestmark = pytest.mark.integration

FAMILY, GIVEN, FAMILY_KANA, GIVEN_KANA = "鵜飼野", "雛菊", "ウカイノ", "ヒナギク"
TOWN, BANCHI, BUILDING = "鸚鵡町", "九丁目八番七号", "鶺鴒荘"
ADDRESS_NUMBER, INTEGRATED = "80808080801", "70707070701"
PERSONAL = "93939393939" + str(personal_number_check_digit("93939393939"))
RESIDENT_CODE = "6464646464" + str(resident_code_check_digit("6464646464"))
CANARY = [FAMILY, GIVEN, FAMILY_KANA, GIVEN_KANA, FAMILY + GIVEN, TOWN, BANCHI, BUILDING,
          ADDRESS_NUMBER, INTEGRATED, PERSONAL, RESIDENT_CODE]


def canary_changes(catalog: Catalog) -> list[dict[str, Any]]:
    """Three changes (履歴番号 1..3) of one canary resident aged 20-64: every path needs
    destinations beyond the tax system (年金 takes 20-64)."""
    base = next(r for r in sample_records("jumin.idou", catalog, seed=21, n=200)
                if r.get("personal_number") and r["change"]["reason"] == "TENKYO"
                and 25 <= r["change"]["effective_date"].year - r["birth_date"].year <= 60)
    record = copy.deepcopy(base)
    record.update(address_number=ADDRESS_NUMBER, integrated_address_number=INTEGRATED,
                  personal_number=PERSONAL, resident_code=RESIDENT_CODE)
    record["name"].update(family_name=FAMILY, given_name=GIVEN, family_name_kana=FAMILY_KANA,
                          given_name_kana=GIVEN_KANA)
    record["address"].update(town=TOWN, banchi=BANCHI, building=BUILDING)
    changes = []
    for n in (1, 2, 3):
        change = copy.deepcopy(record)
        change["history_number"] = n
        changes.append(change)
    return changes


def write_config(path: Path, ports: dict[str, int]) -> Path:
    lines = ["[bus]", 'state_dir = "var"', "", "[intake]", "http_port = 0", "",
             "[logging]", 'format = "json"', 'level = "debug"', "",
             "[retry]", "attempts = 1", "backoff = 0.01", "tiers = [0.3]", "deadline = 120", "poison_after = 2"]
    for name, port in ports.items():
        lines += ["", f"[destinations.{name}]", 'transport = "http"', f'url = "http://127.0.0.1:{port}/messages"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_no_canary_value_appears_in_logs_audit_cli_output_or_error_messages(tmp_path: Path) -> None:
    catalog = Catalog.load()
    ks = catalog.get("jumin.idou")
    changes = canary_changes(catalog)
    bodies = [ks.to_xml(c) for c in changes]
    for body in bodies:  # the canary itself must be a valid resident, or it proves nothing
        assert PERSONAL.encode() in body and FAMILY.encode() in body
    municipality = changes[0]["municipality_code"]
    subject = Pseudonymizer(PSEUDONYM_KEY.encode()).subject(municipality, ADDRESS_NUMBER)
    table = RouteTable.load(routes_dir(), catalog)
    reached = {m.route.destination for m in table.route(changes[0], municipality)}
    assert {"zei", "nenkin"} <= reached
    ports = dict(zip(sorted(SYSTEMS), free_ports(len(SYSTEMS)), strict=True))
    config = write_config(tmp_path / "renkei.toml", ports)
    outputs: list[str] = []

    async def run(*args: str, expect: int | None = 0, configured: bool = True) -> str:
        code, out, err = await renkei(*args, *(("--config", str(config)) if configured else ()), cwd=tmp_path)
        outputs.append(out + err)
        assert expect is None or code == expect, (args, code, out, err)
        return out

    bus = await BusProcess.start(config, "--with-simulators")
    try:
        intake = (await bus.wait_for(r"intake listening on (\S+)")).group(1)
        await bus.wait_for(r"renkei run: ready")
        async with httpx.AsyncClient(timeout=30) as client:
            async def control(system: str, **settings: Any) -> None:
                answer = await client.post(f"http://127.0.0.1:{ports[system]}/control", json=settings)
                assert answer.status_code == 200, answer.text

            async def held_by(system: str) -> list[int]:
                held = (await client.get(f"http://127.0.0.1:{ports[system]}/received")).json()
                return [m["sequence"] for m in sorted(held["messages"], key=lambda m: m["number"])
                        if m["subject"] == subject]

            await control("zei", mode="reject", reject_subject=subject)  # dead letter, then held
            await control("nenkin", mode="fail", fail_status=503, count=2)  # retried through a tier
            xml = {"content-type": "application/xml"}
            answers = [await client.post(intake, content=bodies[0], headers=xml)]
            answers.append(await client.post(intake, content=bodies[0], headers=xml))  # duplicate
            broken = copy.deepcopy(changes[1])
            broken["personal_number"] = PERSONAL[:-1] + str((int(PERSONAL[-1]) + 1) % 10)  # R401
            answers.append(await client.post(intake, content=ks.to_xml(broken), headers=xml))
            answers += [await client.post(intake, content=body, headers=xml) for body in bodies[1:]]
            assert [a.status_code for a in answers] == [202, 200, 422, 202, 202]
            assert "R401" in answers[2].text
            outputs.extend(a.text for a in answers)

            async def nenkin_has_all() -> bool:
                return await held_by("nenkin") == [1, 2, 3]

            await eventually(nenkin_has_all, "the retried destination got the canary's three changes in order")

            async def one_dead() -> bool:
                code, out, _ = await renkei("dead", "list", "--json", "--config", str(config), cwd=tmp_path)
                return code == 0 and len(json.loads(out)) == 1

            await eventually(one_dead, "the refused change is a dead letter")
            [letter] = json.loads(await run("dead", "list", "--json"))
            assert letter["destination"] == "zei" and letter["code"] == "D100"
            await run("dead", "list")
            shown = await run("dead", "show", str(letter["id"]))
            assert "(12 chars)" in shown  # the 個人番号 is there, masked
            await run("status")
            await run("status", "--json")
            assert await held_by("zei") == []  # 2 and 3 wait behind the dead change

            await control("zei", mode="ok")  # the tax system fixed its side
            await run("dead", "replay", str(letter["id"]), "--operator", "ops-canary")

            async def zei_has_all() -> bool:
                return await held_by("zei") == [1, 2, 3]

            await eventually(zei_has_all, "the replay released the canary's changes in order")
            message_id = Pseudonymizer(PSEUDONYM_KEY.encode()).message_id(municipality, ADDRESS_NUMBER, 1)
            life = await run("audit", "show", message_id)
            for event in ("accepted", "duplicate", "routed", "retried", "dead_lettered", "replayed", "delivered"):
                assert event in life, event
            trail = await run("audit", "trail", "--resident", ADDRESS_NUMBER, "--municipality", municipality)
            assert "zei" in trail and "nenkin" in trail
            await run("audit", "trail", "--resident", ADDRESS_NUMBER, "--csv")
            await run("audit", "verify")
            broken_file = tmp_path / "broken.xml"
            broken_file.write_bytes(ks.to_xml(broken))
            await run("validate", str(broken_file), expect=1, configured=False)
            assert "R401" in await run("validate", "--json", str(broken_file), expect=1, configured=False)
    finally:
        assert await bus.stop() == 0
    logs = bus.output
    assert '"level": "debug"' in logs and "dead-lettered" in logs and "retrying later" in logs

    received = b"".join(body for _, body in read_received(tmp_path / "var" / "simulators" / "zei"))
    assert PERSONAL.encode() in received and FAMILY.encode() in received  # the search would find a leak
    audit_bytes = b"".join(p.read_bytes() for p in (tmp_path / "var").glob("audit.sqlite*"))
    assert len(audit_bytes) > 10_000
    leaks = {value: where for value in CANARY
             for where, text in (("logs", logs), ("cli/http output", "\n".join(outputs)),
                                 ("audit store", audit_bytes.decode("utf-8", "replace")))
             if value in text}
    assert leaks == {}
