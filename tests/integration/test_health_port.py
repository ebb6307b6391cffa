"""/metrics, /healthz and /readyz of `renkei run` itself, the console off, as a real process:
a deliverer on its `[bus] health_port` (and nothing else there), the whole bus on its HTTP
intake's port; Prometheus' own parser reads the exposition, no personal value is in it; /readyz
goes 503 while the broker file cannot be read and back, and 503 naming the record when the
audit store is tampered with (one alert opened, in the log)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from run_support import BusProcess, changes, eventually, free_ports, personal_values, write_config

from adapters.simulators import SYSTEMS
from bus.audit.signing import generate_key_file
from bus.catalog import Catalog

pytestmark = pytest.mark.integration

_MONITORING = ('\n[audit]\nsigning_key_file = "audit.pem"\nwitness = "witness/audit.jsonl"\ncheckpoint_interval = 1\n'
               "\n[console]\nquiet_period = 0\nsample_every = 0.5\nready_verify_every = 0\n")


def _config(tmp_path: Path, destinations: dict[str, str], health_port: int = 0) -> Path:
    config = write_config(tmp_path / "renkei.toml", destinations=destinations)
    generate_key_file(tmp_path / "audit.pem")
    text = config.read_text(encoding="utf-8").replace('state_dir = "var"',
                                                      f'state_dir = "var"\nhealth_port = {health_port}', 1)
    config.write_text(text + _MONITORING, encoding="utf-8")
    return config


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_a_deliverer_serves_the_probes_on_its_health_port_and_readyz_follows_the_broker(tmp_path: Path) -> None:
    health, sink = free_ports(2)
    config = _config(tmp_path, {"zei": f"http://127.0.0.1:{sink}/messages"}, health_port=health)
    bus = await BusProcess.start(config, "--role", "deliver")
    base = f"http://127.0.0.1:{health}"
    try:
        await bus.wait_for(rf"metrics and health on http://127\.0\.0\.1:{health}/metrics")
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            assert (await client.get("/healthz")).status_code == 200
            samples = _samples((await client.get("/metrics")).text)
            assert samples[("renkei_destination_ready", (("destination", "zei"),))] == 0
            assert ("renkei_destination_delivered_total", (("destination", "zei"),)) in samples
            assert (await client.post("/v1/messages", content=b"<x/>")).status_code == 404  # probes only
            assert (await client.get("/")).status_code == 404

            async def ready_is(code: int) -> bool:
                return (await client.get("/readyz")).status_code == code

            await eventually(lambda: ready_is(200), "the deliverer ready")
            broker = tmp_path / "var" / "broker.sqlite"
            broker.rename(broker.with_name("broker.away"))  # the broker's file cannot be read
            try:
                answer = await client.get("/readyz")
                assert answer.status_code == 503 and answer.json()["checks"]["broker"] == "unreachable"
            finally:
                broker.with_name("broker.away").rename(broker)
            await eventually(lambda: ready_is(200), "ready again once the broker's file is back")
    finally:
        assert await bus.stop() == 0
    assert "intake listening" not in bus.output and "/readyz answers 503" not in bus.output


async def test_health_port_0_serves_no_listener_and_an_unprovable_trail_is_said_at_start(tmp_path: Path) -> None:
    (sink,) = free_ports(1)
    config = write_config(tmp_path / "renkei.toml", destinations={"zei": f"http://127.0.0.1:{sink}/messages"})
    config.write_text(config.read_text(encoding="utf-8").replace('state_dir = "var"', 'state_dir = "var"\n'
                                                                 "health_port = 0", 1), encoding="utf-8")
    bus = await BusProcess.start(config, "--role", "deliver")
    try:
        await bus.wait_for(r"renkei run: ready")
    finally:
        assert await bus.stop() == 0
    assert "metrics and health on" not in bus.output
    assert "/readyz answers 503 while the audit trail cannot be proven" in bus.output


async def test_the_bus_serves_metrics_on_its_intake_port_and_readyz_catches_a_tampered_trail(tmp_path: Path) -> None:
    catalog = Catalog.load()
    ports = dict(zip(sorted(SYSTEMS), free_ports(len(SYSTEMS)), strict=True))
    config = _config(tmp_path, {name: f"http://127.0.0.1:{port}/messages" for name, port in ports.items()})
    messages = changes(catalog, 6, seed=11)
    bus = await BusProcess.start(config, "--with-simulators")
    try:
        intake = (await bus.wait_for(r"intake listening on (\S+)")).group(1)
        base = intake.removesuffix("/v1/messages")
        await bus.wait_for(rf"metrics and health on the intake's port \({re.escape(base)}/metrics")
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for body, _ in messages:
                answer = await client.post("/v1/messages", content=body, headers={"content-type": "application/xml"})
                assert answer.status_code == 202, answer.text

            async def all_delivered() -> bool:
                samples = _samples((await client.get("/metrics")).text)
                return samples.get(("renkei_delivery_latency_seconds_count", (("destination", "zei"),))) == 6 \
                    and samples.get(("renkei_destination_delivered_total", (("destination", "zei"),))) == 6

            await eventually(all_delivered, "six deliveries to zei counted and in the latency histogram")
            text = (await client.get("/metrics")).text
            samples = _samples(text)
            assert samples[("renkei_destination_delivered_total", (("destination", "zei"),))] == 6
            assert samples[("renkei_source_accepted_total", (("source", "http"),))] == 6
            leaked = [v for v in personal_values(r for _, r in messages) if v in text]
            assert leaked == [] and not re.search(r"[0-9a-f]{32}", text)  # no pseudonym, no message id
            assert (await client.get("/readyz")).status_code == 200

            db = sqlite3.connect(tmp_path / "var" / "audit.sqlite", isolation_level=None)
            db.execute("DROP TRIGGER IF EXISTS audit_records_no_update")
            (seq,) = db.execute("SELECT max(seq) FROM audit_records").fetchone()
            db.execute("UPDATE audit_records SET destination = 'elsewhere' WHERE seq = ?", (seq,))
            db.close()
            answer = await client.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["checks"]["audit"].startswith(f"broken at record {seq}: was altered")
            assert not re.search(r"[0-9a-f]{32}", answer.text)

            async def alert_opened() -> bool:
                return "audit:verify" in bus.output

            await eventually(alert_opened, "the audit alert opened", within=30)
            assert (await client.get("/readyz")).status_code == 503
    finally:
        assert await bus.stop() == 0
    opened = [line for line in bus.output.splitlines() if "alert opened" in line and "audit:verify" in line]
    assert len(opened) == 1, opened
