"""The console over plain HTTP, on a real bus (embedded broker, real stores, real audit trail):
CSRF, the login throttle and its audit records, /readyz, /metrics after real traffic with no
personal data in them, the auditor's export, and `renkei run` serving the console when enabled."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from run_support import PSEUDONYM_KEY, BusProcess, eventually, free_ports, personal_values, renkei

from adapters.server import EmbeddedServer
from bus.app import Bus
from bus.audit.events import AuditEvent, EventType
from bus.audit.log import AuditLog
from bus.audit.signing import generate_key_file
from bus.catalog import Catalog
from bus.console import Accounts, Console, console_options
from bus.ports import FunctionSink, Receipt
from bus.settings import Settings
from bus.synthetic.samples import sample_records

pytestmark = pytest.mark.integration
PASSWORD = "a long passphrase"


@dataclass
class Running:
    bus: Bus
    console: Console
    records: list[dict[str, Any]]


def _config(tmp_path: Path, extra: str = "", *, audit: str | None = None) -> Path:
    """A bus of one municipality; its trail signed and witnessed (so /readyz's strict verify can
    pass) unless `audit` gives another [audit] table."""
    if audit is None:
        generate_key_file(tmp_path / "audit.pem")
        audit = 'signing_key_file = "audit.pem"\nwitness = "witness/audit.jsonl"\n'
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\nmunicipalities = ["131016"]\n\n[logging]\nlevel = "warning"\n\n'
                      f'[audit]\n{audit}\n[console]\nport = 0\nlogin_failures = 3\n{extra}', encoding="utf-8")
    return config


@pytest.fixture(params=["embedded", pytest.param("amqp", marks=pytest.mark.amqp)])
async def running(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    env = {"RENKEI_PSEUDONYM_KEY": PSEUDONYM_KEY}
    if request.param == "amqp":
        env["RENKEI_BROKER_URL"] = str(request.getfixturevalue("amqp_vhost_url"))
    settings = Settings.load(_config(tmp_path), env=env)
    options = console_options(settings, env={})
    assert options.users_file is not None
    Accounts(options.users_file).add("sato", PASSWORD, role="operator", municipalities=["131016"])
    Accounts(options.users_file).add("audit-1", PASSWORD, role="auditor", municipalities=["131016"])
    bus = Bus(settings, sinks={"zei": FunctionSink(Receipt.applied), "kokuho": FunctionSink(Receipt.applied)})
    await bus.start()
    console = Console(settings, options, serve=EmbeddedServer, broker=bus.broker, destinations=lambda: bus.destinations)
    await console.start()
    try:
        yield Running(bus, console, [])
    finally:
        await console.stop()
        await bus.stop()


@contextlib.asynccontextmanager
async def _logged_in(base: str, name: str = "sato") -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base) as client:
        page = await client.get("/login")
        answer = await client.post("/login", data={"csrf": _csrf(page.text), "name": name, "password": PASSWORD})
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        yield client


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


async def test_a_post_without_the_sessions_csrf_token_is_refused(running: Running) -> None:
    async with _logged_in(running.console.url) as client:
        refused = await client.post("/dead/resolve", data={"action": "replay", "id": "1", "reason": "x"})
        assert refused.status_code == 403
        forged = await client.post("/dead/resolve", data={"csrf": "guessed", "action": "replay", "id": "1",
                                                          "reason": "x"})
        assert forged.status_code == 403
    async with httpx.AsyncClient(base_url=running.console.url) as stranger:
        login = await stranger.post("/login", data={"name": "sato", "password": PASSWORD})  # no session, no token
        assert login.status_code == 403


async def test_login_failures_lock_the_account_and_each_is_audited_without_the_password(running: Running) -> None:
    async with httpx.AsyncClient(base_url=running.console.url) as client:
        csrf = _csrf((await client.get("/login")).text)
        codes = [(await client.post("/login", data={"csrf": csrf, "name": "sato", "password": f"wrong-{i}"}))
                 .status_code for i in range(3)]
        assert codes == [401, 401, 401]
        locked = await client.post("/login", data={"csrf": csrf, "name": "sato", "password": PASSWORD})
        assert locked.status_code == 429  # the right password, but too late
        unknown = await client.post("/login", data={"csrf": csrf, "name": "nobody", "password": "x"})
        assert unknown.status_code == 429  # the address is locked too
    with AuditLog.open(running.bus.settings) as log:
        failed = [r.event for r in log.store.records() if r.event.event.value == "auth_failed"]
    assert [e.actor for e in failed] == ["console:sato"] * 4 + ["console:unknown-account"]
    assert "locked" in str(failed[3].reason) and all("wrong-" not in str(e.reason) for e in failed)


async def test_readyz_says_ready_and_healthz_that_the_process_lives(running: Running) -> None:
    async with httpx.AsyncClient(base_url=running.console.url) as client:
        assert (await client.get("/healthz")).text == "ok\n"
        ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "checks": {
        "broker": "ok", "delivery_store": "ok", "state_store": "ok", "audit": "ok"}}


async def test_readyz_is_not_ready_when_the_audit_chain_cannot_be_proven(tmp_path: Path) -> None:
    """Strict verification is /readyz's: no signing key and no witness, nothing proves the trail."""
    settings = Settings.load(_config(tmp_path, audit=""), env={"RENKEI_PSEUDONYM_KEY": PSEUDONYM_KEY})
    async with Bus(settings, sinks={"zei": FunctionSink(Receipt.applied)}) as bus:
        await bus.start()
        console = Console(settings, console_options(settings, env={}), serve=EmbeddedServer, broker=bus.broker,
                          destinations=lambda: bus.destinations)
        await console.start()
        try:
            bus.audit.append([AuditEvent(EventType.AUTH_FAILED, source="console", actor="console:x", reason="a try")])
            async with httpx.AsyncClient(base_url=console.url) as client:
                ready = await client.get("/readyz")
        finally:
            await console.stop()
    checks = ready.json()["checks"]
    assert ready.status_code == 503 and checks["broker"] == "ok"
    assert checks["audit"].startswith("not proven: ") and "no witness" in checks["audit"]


async def test_readyz_is_not_ready_when_the_broker_cannot_be_reached(tmp_path: Path) -> None:
    config = _config(tmp_path).read_text(encoding="utf-8").replace(
        'state_dir = "var"', 'state_dir = "var"\nbroker_url = "amqp://guest:guest@127.0.0.1:1/%2F"')
    (tmp_path / "renkei.toml").write_text(config, encoding="utf-8")
    settings = Settings.load(tmp_path / "renkei.toml", env={"RENKEI_PSEUDONYM_KEY": PSEUDONYM_KEY})
    console = Console(settings, console_options(settings, env={}), serve=EmbeddedServer)
    await console.start()
    try:
        async with httpx.AsyncClient(base_url=console.url) as client:
            ready = await client.get("/readyz")
            metrics = await client.get("/metrics")
    finally:
        await console.stop()
    assert ready.status_code == 503 and ready.json()["checks"]["broker"] == "unreachable"
    assert "renkei_console_up 0.0" in metrics.text


async def test_metrics_count_real_traffic_and_carry_no_personal_data(running: Running) -> None:
    catalog = Catalog.load()
    ks = catalog.get("jumin.idou")
    sent = [(ks.to_xml(r), r) for r in sample_records("jumin.idou", catalog, seed=5, n=12, municipality="131016")]
    for body, _ in sent:
        assert (await running.bus.intake.submit(body, content_type="application/xml", source="jumin")).status \
            == "accepted"
    assert await running.bus.wait_idle(within=60)
    await running.console.monitor.look()
    async with httpx.AsyncClient(base_url=running.console.url) as client:
        text = (await client.get("/metrics")).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("renkei_destination_delivered_total", (("destination", "zei"),))] == 12
    assert samples[("renkei_source_accepted_total", (("source", "jumin"),))] == 12
    assert samples[("renkei_delivery_latency_seconds_count", (("destination", "zei"),))] == 12
    assert samples[("renkei_destination_health", (("destination", "zei"),))] == 0
    leaked = [v for v in personal_values(r for _, r in sent) if v in text]
    assert leaked == []
    assert not re.search(r"[0-9a-f]{32}", text)  # no pseudonym, no message id


async def test_an_auditor_exports_its_municipality_and_an_operator_may_not(running: Running) -> None:
    async with _logged_in(running.console.url, "audit-1") as auditor:
        csrf = _csrf((await auditor.get("/audit")).text)
        export = await auditor.post("/audit/export", data={"csrf": csrf, "municipality": "131016"})
        other = await auditor.post("/audit/export", data={"csrf": csrf, "municipality": "271004"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
    assert '"municipality": "131016"' in export.text.splitlines()[0] or '"131016"' in export.text.splitlines()[0]
    assert other.status_code == 403
    async with _logged_in(running.console.url, "sato") as operator:
        csrf = _csrf((await operator.get("/audit")).text)
        assert (await operator.post("/audit/export", data={"csrf": csrf, "municipality": "131016"})).status_code \
            == 403


async def test_renkei_run_serves_the_console_on_its_own_port_when_enabled(tmp_path: Path) -> None:
    port, intake = free_ports(2)
    config = _config(tmp_path, "enabled = true\n").read_text(encoding="utf-8").replace("port = 0", f"port = {port}")
    config = config.replace("[logging]", f"[intake]\nhttp_port = {intake}\n\n[logging]")
    (tmp_path / "renkei.toml").write_text(config, encoding="utf-8")
    code, _, err = await renkei("console", "--config", "renkei.toml", cwd=tmp_path)
    assert code == 1 and "no accounts" in err and "renkei users add" in err
    bus = await BusProcess.start(tmp_path / "renkei.toml")
    try:
        await bus.wait_for(rf"console on http://127\.0\.0\.1:{port}/")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            login = await client.get("/login")
            assert login.status_code == 200 and "ログイン" in login.text

            async def metrics_seen() -> bool:
                return "renkei_console_up 1.0" in (await client.get("/metrics")).text

            await eventually(metrics_seen, "the console's first look at the bus")
    finally:
        assert await bus.stop() == 0


async def test_renkei_run_role_console_runs_the_console_alone(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    config = _config(tmp_path).read_text(encoding="utf-8").replace("port = 0", f"port = {port}")
    (tmp_path / "renkei.toml").write_text(config, encoding="utf-8")  # [console] enabled is not needed
    console_only = await BusProcess.start(tmp_path / "renkei.toml", "--role", "console")
    try:
        await console_only.wait_for(rf"console on http://127\.0\.0\.1:{port}/")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
        assert "intake listening" not in console_only.output  # no bus parts in this process
    finally:
        assert await console_only.stop() == 0
