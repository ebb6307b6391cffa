"""`renkei status` (a separate process, reading the state_dir) while an in-process bus on the
embedded broker holds a resident back: the destination refused that resident's change, so
status shows one dead letter, one resident held with its later changes, every other resident
delivered; after the operator's replay, nothing dead, held or retrying. Counts only: no
personal value and no resident's pseudonym appears in what status printed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from run_support import PSEUDONYM_KEY, by_name, changes, personal_values, renkei, status_json

from bus.app import Bus
from bus.brokers.amqp import AmqpBroker
from bus.brokers.base import Delivery
from bus.catalog import Catalog
from bus.delivery.dead import DeadLetters
from bus.errors import PermanentError
from bus.masking import Pseudonymizer
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import Settings
from bus.state import StateStore

pytestmark = pytest.mark.integration
OTHERS = 5  # residents with one change each, besides the refused one
LATER = 2  # the refused resident's changes after the refused one


def _feed(catalog: Catalog) -> tuple[list[tuple[bytes, dict[str, Any]]], dict[str, Any]]:
    """A resident's three changes in 履歴番号 order (the first will be refused), then the others'."""
    messages = changes(catalog, OTHERS + 1, seed=21)
    first = messages[0][1]
    victim = [messages[0]]
    for n in range(1, LATER + 1):
        later = copy.deepcopy(first)
        later["history_number"] = int(first["history_number"]) + n
        victim.append((catalog.get("jumin.idou").to_xml(later), later))
    return victim + messages[1:], first


async def test_status_shows_the_refused_resident_dead_and_held_while_the_others_are_delivered(
    tmp_path: Path,
) -> None:
    catalog = Catalog.load()
    feed, refused = _feed(catalog)
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n\n[logging]\nlevel = "warning"\n', encoding="utf-8")
    settings = Settings.load(config, env={"RENKEI_PSEUDONYM_KEY": PSEUDONYM_KEY})
    refused_id = Pseudonymizer(PSEUDONYM_KEY.encode()).message_id(
        refused["municipality_code"], refused["address_number"], int(refused["history_number"]))
    refusing = True
    applied: list[str] = []

    def zei(message: Outbound) -> Receipt:
        if refusing and message.envelope.message_id == refused_id:
            raise PermanentError("the receiving system refused the change (test)")
        applied.append(message.envelope.message_id)
        return Receipt.applied(message)

    bus = Bus(settings, sinks={"zei": FunctionSink(zei)}, catalog=catalog)
    try:
        await bus.start()
        for body, _ in feed:
            answer = await bus.intake.submit(body, content_type="application/xml", source="http")
            assert answer.status == "accepted", answer
        assert await bus.wait_idle(within=60)
        assert len(applied) == OTHERS and refused_id not in applied  # nothing of the resident overtook

        data, held_output = await status_json(config)
        code, table, table_err = await renkei("status", "--config", str(config), "--wide", cwd=tmp_path)
        assert code == 0, table + table_err

        zei_status = by_name(data["destinations"])["zei"]
        assert (zei_status["dead"], zei_status["held"], zei_status["held_messages"], zei_status["retrying"]) \
            == (1, 1, LATER, 0)
        assert (zei_status["delivered"], zei_status["routed"], zei_status["dead_lettered_total"]) \
            == (OTHERS, OTHERS + 1 + LATER, 1)
        assert zei_status["oldest_parked_age_seconds"] >= 0 and zei_status["ready"] == 0
        assert data["dead_letters"]["total"] == 1
        assert data["dead_letters"]["by_destination"] == {"zei": 1}
        assert data["dead_letters"]["by_code"] == {"D100": 1}
        assert zei_status["attempts"] >= OTHERS + 1  # every try of the sink is counted, the refused one too
        assert all(d["dead"] == 0 and d["held"] == 0 for d in data["destinations"] if d["name"] != "zei")
        row = next(line for line in table.splitlines() if line.startswith("zei "))
        assert row.split()[10:13] == ["0", "1", "1"]  # RETRYING, HELD, DEAD
        assert "dead letters: 1 unresolved (zei 1; codes D100 1)" in table

        refusing = False  # the receiving system was fixed: the operator replays the letter
        [letter] = bus.deliveries.dead_list()
        await DeadLetters(bus.deliveries, bus.broker, catalog).replay(letter.id, by="ops-test")
        assert await bus.wait_idle(within=60)
        after, after_output = await status_json(config)
    finally:
        await bus.stop()

    zei_after = by_name(after["destinations"])["zei"]
    assert (zei_after["dead"], zei_after["held"], zei_after["held_messages"], zei_after["retrying"]) == (0, 0, 0, 0)
    assert zei_after["delivered"] == OTHERS + 1 + LATER and zei_after["oldest_parked_age_seconds"] == 0.0
    assert after["dead_letters"] == {"total": 0, "by_destination": {}, "by_code": {}, "oldest_age_seconds": 0.0}

    printed = held_output + table + table_err + after_output
    subject = Pseudonymizer(PSEUDONYM_KEY.encode()).subject(refused["municipality_code"], refused["address_number"])
    assert subject not in printed and refused_id not in printed  # not even pseudonyms
    leaked = sorted(v for v in personal_values(r for _, r in feed) if v in printed)
    assert not leaked, f"personal values in the output of renkei status: {leaked[:5]}"


async def test_status_on_rabbitmq_says_it_cannot_see_the_delivery_store_of_a_deliverer_running_elsewhere(
    tmp_path: Path, amqp_vhost_url: str,
) -> None:
    """A deliverer consuming `renkei.dest.zei` from another host or volume keeps its dead
    letters there: status read from here says so and exits 1, and 0 once it is gone."""
    config = tmp_path / "renkei.toml"
    config.write_text(f'[bus]\nstate_dir = "var"\nbroker_url = "{amqp_vhost_url}"\n', encoding="utf-8")
    StateStore(tmp_path / "var" / "state.sqlite").close()  # a bus (its router) ran with this state_dir
    elsewhere = AmqpBroker(amqp_vhost_url)
    await elsewhere.connect()
    try:
        for queue in ("renkei.intake", "renkei.dest.zei"):
            await elsewhere.declare(queue)

        async def deliver(delivery: Delivery) -> None:
            return None

        consumer = await elsewhere.consume("renkei.dest.zei", deliver)
        code, out, err = await renkei("status", "--config", str(config), "--json", cwd=tmp_path)
        assert code == 1, out + err
        data = json.loads(out)
        assert data["complete"] is False
        [unseen] = data["unseen"]
        assert "zei" in unseen and "--state-dir" in unseen
        await consumer.cancel()
    finally:
        await elsewhere.close()
    code, out, err = await renkei("status", "--config", str(config), "--json", cwd=tmp_path)
    assert code == 0, out + err
    assert json.loads(out)["unseen"] == []
