"""The console's own alerts about the audit trail, on a real bus: a record altered in the trail
raises one alert (and /metrics says the chain is not whole); with a signing key, records left
unsigned longer than `checkpoint_overdue` raise one too, and a checkpoint clears it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from run_support import PSEUDONYM_KEY

from adapters.server import EmbeddedServer
from bus.app import Bus
from bus.audit.log import AuditLog
from bus.catalog import Catalog
from bus.cli import main
from bus.console import Console, console_options
from bus.ports import FunctionSink, Receipt
from bus.settings import Settings
from bus.synthetic.samples import sample_records

pytestmark = pytest.mark.integration


async def _bus_with_traffic(tmp_path: Path, audit: str = "") -> tuple[Bus, Console]:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n\n[logging]\nlevel = "warning"\n\n'
                      f'[console]\nport = 0\nquiet_period = 0\ncheckpoint_overdue = 0\n\n{audit}', encoding="utf-8")
    settings = Settings.load(config, env={"RENKEI_PSEUDONYM_KEY": PSEUDONYM_KEY})
    bus = Bus(settings, sinks={"zei": FunctionSink(Receipt.applied)})
    await bus.start()
    catalog = Catalog.load()
    for record in sample_records("jumin.idou", catalog, seed=3, n=3):
        body = catalog.get("jumin.idou").to_xml(record)
        assert (await bus.intake.submit(body, content_type="application/xml", source="jumin")).status == "accepted"
    assert await bus.wait_idle(within=60)
    await bus.recorder.flush()
    return bus, Console(settings, console_options(settings, env={}), serve=EmbeddedServer, broker=bus.broker)


async def test_an_altered_audit_record_raises_one_alert_and_the_metric_says_so(tmp_path: Path) -> None:
    bus, console = await _bus_with_traffic(tmp_path)
    try:
        await console.monitor.look()
        assert console.monitor.audit is not None and console.monitor.audit.ok
        assert console.alerts.open == []
        db = sqlite3.connect(bus.settings.audit_store, isolation_level=None)
        db.execute("DROP TRIGGER audit_records_no_update")
        db.execute("UPDATE audit_records SET route = 'forged' WHERE seq = 3")
        db.close()
        console.monitor.verify_soon()
        await console.monitor.look()
        await console.monitor.look()
        assert [a.key for a in console.alerts.open] == ["audit:verify"]
        assert console.alerts.notifications == 1
        assert "renkei_audit_chain_ok 0.0" in console.monitor.metrics.exposition().decode()
    finally:
        await bus.stop()


async def test_records_left_unsigned_raise_an_overdue_checkpoint_alert_that_a_checkpoint_clears(
    tmp_path: Path
) -> None:
    assert CliRunner().invoke(main, ["audit", "keygen", str(tmp_path / "audit.pem")]).exit_code == 0
    bus, console = await _bus_with_traffic(
        tmp_path, '[audit]\nsigning_key_file = "audit.pem"\ncheckpoint_every = 100000\n')
    try:
        await console.monitor.look()
        assert [a.key for a in console.alerts.open] == ["audit:checkpoint"]
        with AuditLog.open(bus.settings) as log:
            assert log.checkpoint() is not None
        console.monitor.verify_soon()
        await console.monitor.look()
        assert console.alerts.open == [] and [a.key for a in console.alerts.recent] == ["audit:checkpoint"]
    finally:
        await bus.stop()
