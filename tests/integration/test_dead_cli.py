"""`renkei dead` as operations staff use it, on the embedded broker and on RabbitMQ: a bus
(in this process) whose tax system refuses two residents' first changes; the commands (real
subprocesses on the same state_dir and broker) list and filter the dead letters, show one
masked, show it unmasked only when asked (and the audit trail records who looked), replay
one and discard the other with a reason — and each resident's held changes then arrive in
履歴番号 order, while nobody else was held up."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from run_support import PSEUDONYM_KEY, changes, personal_values, renkei

from bus.app import Bus
from bus.catalog import Catalog
from bus.errors import PermanentError
from bus.masking import Pseudonymizer
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import Settings

pytestmark = pytest.mark.integration


def _resident_changes(catalog: Catalog, record: dict[str, Any], n: int) -> list[tuple[bytes, dict[str, Any]]]:
    out = []
    for k in range(n):
        later = copy.deepcopy(record)
        later["history_number"] = int(record["history_number"]) + k
        out.append((catalog.get("jumin.idou").to_xml(later), later))
    return out


@pytest.fixture(params=["embedded", pytest.param("amqp", marks=pytest.mark.amqp)])
def broker_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "embedded" else str(request.getfixturevalue("amqp_vhost_url"))


async def test_operators_list_show_replay_and_discard_dead_letters_and_order_is_kept(
    tmp_path: Path, broker_url: str | None
) -> None:
    catalog = Catalog.load()
    base = changes(catalog, 6, seed=31)
    replayed_one, discarded_one = base[0][1], base[1][1]
    feed = _resident_changes(catalog, replayed_one, 3) + _resident_changes(catalog, discarded_one, 3) + base[2:]
    config = tmp_path / "renkei.toml"
    url_line = f'broker_url = "{broker_url}"\n' if broker_url else ""
    config.write_text(f'[bus]\nstate_dir = "var"\n{url_line}\n[logging]\nlevel = "warning"\n', encoding="utf-8")
    settings = Settings.load(config, env={"RENKEI_PSEUDONYM_KEY": PSEUDONYM_KEY})
    ids = Pseudonymizer(PSEUDONYM_KEY.encode())

    def first_id(record: dict[str, Any]) -> str:
        return ids.message_id(record["municipality_code"], record["address_number"], int(record["history_number"]))

    refused = {first_id(replayed_one), first_id(discarded_one)}
    applied: list[tuple[str, int]] = []

    def zei(message: Outbound) -> Receipt:
        if message.envelope.message_id in refused:
            raise PermanentError("the tax system refused the change (test)")
        applied.append((message.envelope.subject, message.envelope.sequence))
        return Receipt.applied(message)

    async def dead(*args: str, expect: int = 0) -> str:
        code, out, err = await renkei("dead", *args, "--config", str(config), cwd=tmp_path)
        assert code == expect, (args, code, out, err)
        outputs.append(out + err)
        return out

    outputs: list[str] = []
    bus = Bus(settings, sinks={"zei": FunctionSink(zei)}, catalog=catalog)
    try:
        await bus.start()
        for body, _ in feed:
            assert (await bus.intake.submit(body, content_type="application/xml", source="jumin")).status == "accepted"
        assert await bus.wait_idle(within=60)
        assert len(applied) == len(base) - 2  # the four other residents: not held up

        letters = json.loads(await dead("list", "--json"))
        assert sorted(d["message_id"] for d in letters) == sorted(refused)
        assert {(d["destination"], d["code"], d["state"]) for d in letters} == {("zei", "D100", "dead")}
        assert json.loads(await dead("list", "--json", "--code", "D200", expect=1)) == []
        table = await dead("list", "--destination", "zei", "--since", "1h")
        assert "D100" in table and "zei" in table
        by_id = {d["message_id"]: d["id"] for d in letters}
        to_replay, to_discard = by_id[first_id(replayed_one)], by_id[first_id(discarded_one)]

        masked = json.loads(await dead("show", str(to_replay), "--json"))
        assert masked["masked"] and masked["message"]["personal_number"].endswith("(12 chars)")
        plain = json.loads(await dead("show", str(to_replay), "--json", "--unmasked", "--operator", "ops-suzuki"))
        assert plain["message"]["personal_number"] == replayed_one["personal_number"]

        refused.clear()  # the tax system fixed its side
        await dead("replay", str(to_replay), "--operator", "ops-suzuki")
        await dead("discard", str(to_discard), "--operator", "ops-tanaka", expect=2)  # --reason is required
        await dead("discard", str(to_discard), "--operator", "ops-tanaka", "--reason", "entered twice")
        await dead("replay", str(to_discard), expect=1)  # already discarded
        assert await bus.wait_idle(within=60)

        subject_of = {r["address_number"]: ids.subject(r["municipality_code"], r["address_number"])
                      for r in (replayed_one, discarded_one)}
        seq = int(replayed_one["history_number"])
        assert [s for subj, s in applied if subj == subject_of[replayed_one["address_number"]]] == [
            seq, seq + 1, seq + 2]
        seq = int(discarded_one["history_number"])
        assert [s for subj, s in applied if subj == subject_of[discarded_one["address_number"]]] == [seq + 1, seq + 2]
        assert json.loads(await dead("list", "--json", expect=1)) == []
        resolved = json.loads(await dead("list", "--json", "--all"))
        assert {(d["state"], d["resolved_by"]) for d in resolved} == {("replayed", "ops-suzuki"),
                                                                      ("discarded", "ops-tanaka")}
    finally:
        await bus.stop()

    code, life, _ = await renkei("audit", "show", first_id(replayed_one), "--config", str(config), cwd=tmp_path)
    assert code == 0
    assert "viewed_unmasked" in life and "actor=ops-suzuki" in life and "replayed" in life
    code, life, _ = await renkei("audit", "show", first_id(discarded_one), "--config", str(config), cwd=tmp_path)
    assert "discarded" in life and "actor=ops-tanaka" in life and "entered twice" in life
    shown_unmasked = outputs.pop(next(i for i, o in enumerate(outputs) if '"masked": false' in o))
    assert replayed_one["personal_number"] in shown_unmasked  # asked for, and audited
    leaked = sorted(v for v in personal_values([replayed_one, discarded_one]) if v in "\n".join(outputs))
    assert leaked == []
