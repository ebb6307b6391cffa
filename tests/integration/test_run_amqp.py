"""`renkei run` on RabbitMQ (a vhost of its own), as a real process, delivering to simulators
in the test process: what the routes say arrives, `renkei status` shows a slow delivery in
flight (RabbitMQ itself does not tell) and then every count, SIGTERM stops the bus cleanly,
and no personal value appears in anything either command printed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from run_support import (
    BusProcess,
    by_bus,
    by_name,
    changes,
    eventually,
    expected_deliveries,
    invalid_change,
    personal_values,
    renkei,
    status_json,
    write_config,
)

from adapters.simulators import SYSTEMS, SimulatorCluster
from bus.catalog import Catalog

pytestmark = [pytest.mark.amqp, pytest.mark.integration]
SENT = 10
SLOW = 10.0  # seconds the first 個人住民税 delivery takes (long enough for several status polls under load)


async def test_run_on_rabbitmq_delivers_and_status_reports_in_flight_and_counts(
    tmp_path: Path, amqp_vhost_url: str
) -> None:
    catalog = Catalog.load()
    messages = changes(catalog, SENT, seed=9)
    records = [record for _, record in messages]
    expected = expected_deliveries(catalog, records)
    assert len(expected["zei"]) == SENT
    async with SimulatorCluster(catalog=catalog) as sims:
        config = write_config(tmp_path / "renkei.toml", broker_url=amqp_vhost_url,
                              destinations={name: sims.messages_url(name) for name in SYSTEMS})
        sims.state("zei").control(mode="slow", delay=SLOW, count=1)
        bus = await BusProcess.start(config)
        try:
            intake = (await bus.wait_for(r"intake listening on (\S+)")).group(1)
            await bus.wait_for(r"renkei run: ready")
            async with httpx.AsyncClient(timeout=30) as client:
                for body, _ in messages:
                    answer = await client.post(intake, content=body, headers={"content-type": "application/xml"})
                    assert answer.status_code == 202, answer.text
                bad = await client.post(intake, content=invalid_change(catalog, records[1]),
                                        headers={"content-type": "application/xml", "x-renkei-source": "kiban"})
                assert bad.status_code == 422

            async def zei_in_flight() -> bool:
                data, _ = await status_json(config)
                return bool(by_name(data["destinations"])["zei"]["in_flight"])

            await eventually(zei_in_flight, "status shows the slow 個人住民税 delivery in flight", within=SLOW)

            async def all_arrived() -> bool:
                return all({m.message_id for m in sims.state(name).messages.values()} == ids
                           for name, ids in expected.items())

            await eventually(all_arrived, "every simulator holds what the routes send it", within=SLOW + 30)

            async def counted() -> bool:
                data, _ = await status_json(config)
                return all(d["delivered"] == by_bus(expected, d["name"]) and d["in_flight"] == 0
                           for d in data["destinations"])

            await eventually(counted, "status counts every delivery, none in flight", poll=0.2)
            data, status_output = await status_json(config)
            code, table, table_err = await renkei("status", "--config", str(config), "--wide", cwd=tmp_path)
            assert code == 0, table + table_err
        finally:
            exit_code = await bus.stop()
        assert all(sims.state(name).effects == len(ids) for name, ids in expected.items())  # once each

    assert data["broker"]["name"] == "amqp" and "guest:***@" in data["broker"]["where"]
    destinations = by_name(data["destinations"])
    for name, ids in expected.items():
        d = destinations[name]
        assert (d["routed"], d["delivered"], d["ready"], d["in_flight"]) == (len(ids), len(ids), 0, 0)
        assert (d["retrying"], d["held"], d["held_messages"], d["dead"], d["dead_lettered_total"]) == (0, 0, 0, 0, 0)
        assert d["consumers"] == 1 and d["delayed"] is None  # a mover's held retries are not counted over AMQP
    assert data["queues"]["intake"]["ready"] == 0 and set(data["queues"]) == {"intake"}
    assert data["dead_letters"] == {"total": 0, "by_destination": {}, "by_code": {}, "oldest_age_seconds": 0.0}
    assert "delayed" in data["not_reported"] and "retrying" not in data["not_reported"]
    sources = by_name(data["sources"])
    assert sources["http"]["accepted"] == SENT and sources["kiban"]["rejected"] == 1
    assert [p["role"] for p in data["processes"]] == ["all"]
    assert "amqp (amqp://guest:***@" in table and "guest:guest" not in table

    assert exit_code == 0, bus.output[-4000:]
    assert "renkei run: stopped" in "".join(bus.stdout)
    after, after_output = await status_json(config)
    assert after["processes"] == []
    assert all(d["consumers"] == 0 and d["in_flight"] == 0 for d in after["destinations"])

    printed = bus.output + status_output + table + table_err + after_output
    assert len(personal_values(records)) > 3 * SENT
    leaked = sorted(v for v in personal_values(records) if v in printed)
    assert not leaked, f"personal values in the output of renkei run/status: {leaked[:5]}"
