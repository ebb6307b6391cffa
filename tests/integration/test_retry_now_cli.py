"""`renkei retry now`: after a destination's outage, the changes waiting in a long retry tier
(here one hour) are delivered at once when an operator asks, on the embedded broker and on
RabbitMQ — each resident's changes in 履歴番号 order — and the audit trail says who asked."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from run_support import PSEUDONYM_KEY, changes, renkei

from bus.app import Bus
from bus.audit.log import AuditLog
from bus.catalog import Catalog
from bus.errors import TransientError
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(params=["embedded", pytest.param("amqp", marks=pytest.mark.amqp)])
def broker_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "embedded" else str(request.getfixturevalue("amqp_vhost_url"))


def _later(catalog: Catalog, record: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    later = copy.deepcopy(record)
    later["history_number"] = int(record["history_number"]) + 1
    return catalog.get("jumin.idou").to_xml(later), later


async def test_changes_waiting_an_hour_are_delivered_at_once_in_order_when_an_operator_asks(
    tmp_path: Path, broker_url: str | None
) -> None:
    catalog = Catalog.load()
    base = changes(catalog, 2, seed=47)
    feed = [base[0], _later(catalog, base[0][1]), base[1]]
    config = tmp_path / "renkei.toml"
    url_line = f'broker_url = "{broker_url}"\n' if broker_url else ""
    config.write_text(f'[bus]\nstate_dir = "var"\n{url_line}\n[logging]\nlevel = "warning"\n\n'
                      "[retry]\nattempts = 1\ntiers = [3600]\n", encoding="utf-8")
    settings = Settings.load(config, env={"RENKEI_PSEUDONYM_KEY": PSEUDONYM_KEY})
    down = True
    applied: list[tuple[str, int]] = []

    def zei(message: Outbound) -> Receipt:
        if down:
            raise TransientError("the tax system is down (test)")
        applied.append((message.envelope.subject, message.envelope.sequence))
        return Receipt.applied(message)

    bus = Bus(settings, sinks={"zei": FunctionSink(zei)}, catalog=catalog)
    try:
        await bus.start()
        for body, _ in feed:
            assert (await bus.intake.submit(body, content_type="application/xml", source="jumin")).status == "accepted"
        deadline = asyncio.get_running_loop().time() + 30
        while len(bus.deliveries.parked_all("zei", "retrying")) < 2:  # both residents wait an hour
            assert asyncio.get_running_loop().time() < deadline, "the changes never went into the hour tier"
            await asyncio.sleep(0.05)
        down = False
        await asyncio.sleep(1.0)
        assert applied == []  # back, but the changes wait for their hour

        code, out, err = await renkei("retry", "now", "--destination", "zei", "--operator", "alice",
                                      "--config", str(config), cwd=tmp_path)
        assert code == 0, (out, err)
        assert "zei: 2 changes made due now" in out
        assert await bus.wait_idle(within=30)
        subjects = {s for s, _ in applied}
        assert len(applied) == 3 and len(subjects) == 2
        twice = [seq for s, seq in applied if [x for x, _ in applied].count(s) == 2]
        assert len(twice) == 2 and twice == sorted(twice)  # that resident's changes in 履歴番号 order
    finally:
        await bus.stop()

    with AuditLog.open(settings) as audit:
        asked = [r.event for r in audit.store.records() if r.event.actor == "alice"]
    assert len(asked) == 2 and {e.event for e in asked} == {"retried"}
    assert all(e.reason == "made due now by `renkei retry now`" for e in asked)


async def test_nothing_waiting_is_a_success_and_json_says_so_per_destination(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n', encoding="utf-8")
    code, out, err = await renkei("retry", "now", "--json", "--destination", "zei", "--destination", "kokuho",
                                  "--config", str(config), cwd=tmp_path)
    assert code == 0, err
    assert json.loads(out) == {"made_due": {"zei": 0, "kokuho": 0}}


async def test_an_unknown_destination_is_named_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n', encoding="utf-8")
    code, _out, err = await renkei("retry", "now", "--destination", "zie", "--config", str(config), cwd=tmp_path)
    assert code == 2
    assert "--destination zie: no route addresses it" in err
