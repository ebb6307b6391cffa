"""Tenants on a real RabbitMQ: one bus, two municipalities (千代田区 131016 = A, 大阪市 271004 = B).

The broker keeps vendors apart (a user per municipality, permissions in its own vhost only:
a wrong password or another municipality's vhost is refused by RabbitMQ itself), the bus
keeps sources to their own municipality (the validated user_id names the publisher; B's
change published by A's vendor is forbidden and audited), and TLS can be switched on in
renkei.toml: a change goes in over https and through the broker over amqps, while a
plain-text or wrong-CA connection to the TLS node is refused.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import amqp.exceptions
import httpx
import pytest
from run_support import BusProcess, eventually
from tenants_support import (
    A,
    B,
    Tenant,
    TlsNode,
    bus_user,
    change_of,
    kombu_connect,
    kombu_submit,
    make_ca,
    personal_values,
    rabbitmq,
)

from adapters.sources.amqp_intake import AmqpIntake, vhost_url
from bus.app import Bus, BusParts
from bus.brokers.amqp import AmqpBroker
from bus.catalog import Catalog
from bus.errors import BrokerError
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import Settings
from bus.tls import broker_context

pytestmark = [pytest.mark.amqp, pytest.mark.integration]

PSEUDONYM_KEY = "renkei-tenants-amqp-key-0123456789"
ROUTES = """\
routes:
  - name: zei-everyone
    destination: zei
    takes: jumin.idou
    when: "true"
    projection: zei.jumin
    legal_basis: 番号法 別表第一 第16項
"""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def tenants(amqp_url: str) -> Iterator[dict[str, Tenant]]:
    """A's and B's vhost and vendor user on the shared test node (own names, dropped after)."""
    run = uuid.uuid4().hex[:6]
    made = {m: Tenant(m, run) for m in (A, B)}
    for tenant in made.values():
        tenant.create()
    yield made
    for tenant in made.values():
        tenant.drop()


def _config(root: Path, broker_url: str, vhosts: dict[str, str]) -> Path:
    (root / "routes").mkdir(parents=True, exist_ok=True)
    (root / "routes" / "zei.yaml").write_text(ROUTES, encoding="utf-8")
    table = ", ".join(f'"{m}" = "{v}"' for m, v in vhosts.items())
    lines = ["[bus]", f'broker_url = "{broker_url}"', 'state_dir = "var"', 'routes_dir = "routes"',
             f'municipalities = ["{A}", "{B}"]', "", "[intake]", "http_port = 0", f"amqp_vhosts = {{ {table} }}", ""]
    for code in (A, B):
        lines += [f"[sources.jumin-{code}]", f'municipalities = ["{code}"]', f'amqp_user = "VENDOR-{code}"', "",
                  f"[destinations.zei-{code}]", 'transport = "http"', 'url = "http://127.0.0.1:9/messages"',
                  'system = "zei"', f'municipality = "{code}"', ""]
    path = root / "renkei.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class RunningBus:
    def __init__(self, bus: Bus, received: dict[str, list[Outbound]]) -> None:
        self.bus, self.received = bus, received

    async def events(self) -> list[tuple[str, str | None, str | None]]:
        await self.bus.recorder.flush()
        return [(r.event.event.value, r.event.source, r.event.municipality) for r in self.bus.audit.store.records()]

    async def trail_text(self) -> str:
        await self.bus.recorder.flush()
        return "\n".join(str(r.to_dict()) for r in self.bus.audit.store.records())


@pytest.fixture(scope="module")
def bus_url(amqp_url: str, tenants: dict[str, Tenant]) -> Iterator[str]:
    """The bus's own user and core vhost, with read/write in both municipality vhosts too."""
    core = f"renkei-core-{uuid.uuid4().hex[:6]}"
    rabbitmq("vhost", core)
    with bus_user(amqp_url, core[-6:], [core, tenants[A].vhost, tenants[B].vhost]) as url:
        yield url
    rabbitmq("drop-vhost", core)


@pytest.fixture
async def running(tmp_path: Path, bus_url: str, tenants: dict[str, Tenant]) -> AsyncIterator[RunningBus]:
    """The bus (in this process) on its core vhost, with an AMQP intake per municipality vhost."""
    config = _config(tmp_path, bus_url, {m: t.vhost for m, t in tenants.items()})
    text = config.read_text()
    for code, tenant in tenants.items():
        text = text.replace(f"VENDOR-{code}", tenant.user)
    config.write_text(text)
    settings = Settings.load(config, env={"RENKEI_PSEUDONYM_KEY": PSEUDONYM_KEY})
    received: dict[str, list[Outbound]] = {}

    def sink(name: str) -> FunctionSink:
        return FunctionSink(lambda m: received.setdefault(name, []).append(m) or Receipt.applied(m))

    bus = Bus(settings, sinks={name: sink(name) for name in settings.destinations})
    await bus.start(BusParts())
    intakes = [AmqpIntake(vhost_url(bus_url, vhost), m, bus.intake, bus.gate)
               for m, vhost in settings.intake.amqp_vhosts.items()]
    try:
        for intake in intakes:
            await intake.start()
        yield RunningBus(bus, received)
    finally:
        for intake in intakes:
            await intake.stop()
        await bus.stop()


def test_a_wrong_password_is_refused_by_the_broker(amqp_url: str, tenants: dict[str, Tenant]) -> None:
    a = tenants[A]
    with pytest.raises(amqp.exceptions.AccessRefused):
        kombu_connect(a.url(amqp_url, password="not-" + a.password))


def test_a_vendor_of_a_cannot_open_bs_vhost(amqp_url: str, tenants: dict[str, Tenant]) -> None:
    """A's credentials are good in A's vhost and refused by RabbitMQ in B's: they cannot
    even reach B's intake, let alone write into it."""
    a, b = tenants[A], tenants[B]
    kombu_connect(a.url(amqp_url))  # its own vhost: fine
    with pytest.raises((amqp.exceptions.AccessRefused, amqp.exceptions.NotAllowed, ConnectionError)):
        kombu_connect(a.url(amqp_url, vhost=b.vhost))


async def test_each_vendor_submits_into_its_own_municipality(running: RunningBus, amqp_url: str,
                                                              tenants: dict[str, Tenant], catalog: Catalog) -> None:
    """kombu, as vendor code: A's change through A's vhost and B's through B's are accepted
    (durable before the answer) and reach their own municipality's destination only."""
    (body_a, _), (body_b, _) = change_of(catalog, A, 11), change_of(catalog, B, 12)
    answer_a = await asyncio.to_thread(kombu_submit, tenants[A].url(amqp_url), body_a, user_id=tenants[A].user)
    answer_b = await asyncio.to_thread(kombu_submit, tenants[B].url(amqp_url), body_b, user_id=tenants[B].user)
    assert answer_a["status"] == "accepted" and answer_b["status"] == "accepted"
    assert await running.bus.wait_idle(30)
    assert [m.envelope.municipality for m in running.received[f"zei-{A}"]] == [A]
    assert [m.envelope.municipality for m in running.received[f"zei-{B}"]] == [B]
    events = await running.events()
    assert ("accepted", f"jumin-{A}", A) in events and ("accepted", f"jumin-{B}", B) in events


async def test_a_vendor_of_a_publishing_bs_change_is_forbidden_and_audited(
        running: RunningBus, amqp_url: str, tenants: dict[str, Tenant], catalog: Catalog) -> None:
    body, record = change_of(catalog, B, 13)
    answer = await asyncio.to_thread(kombu_submit, tenants[A].url(amqp_url), body, user_id=tenants[A].user)
    assert answer["status"] == "forbidden" and answer["code"] == "A403"
    assert await running.bus.wait_idle(30)
    assert running.received == {}
    assert ("forbidden", f"jumin-{A}", B) in await running.events()
    text = await running.trail_text()
    assert not [v for v in personal_values(record) if v in text]


async def test_a_message_without_user_id_is_unauthorized_and_audited(
        running: RunningBus, amqp_url: str, tenants: dict[str, Tenant], catalog: Catalog) -> None:
    body, _ = change_of(catalog, A, 14)
    answer = await asyncio.to_thread(kombu_submit, tenants[A].url(amqp_url), body, user_id=None)
    assert answer["status"] == "unauthorized" and answer["code"] == "A401"
    assert [e[0] for e in await running.events()] == ["auth_failed"]
    assert running.bus.state.counters("auth") == {f"amqp:{tenants[A].vhost}": {"failed": 1}}


async def test_a_vendor_cannot_pretend_to_be_another_vendor(running: RunningBus, amqp_url: str,
                                                           tenants: dict[str, Tenant], catalog: Catalog) -> None:
    """user_id is validated by RabbitMQ: A's vendor claiming B's user is refused by the broker."""
    body, _ = change_of(catalog, A, 15)
    with pytest.raises(amqp.exceptions.PreconditionFailed):
        await asyncio.to_thread(kombu_submit, tenants[A].url(amqp_url), body, user_id=tenants[B].user)
    assert running.received == {}


# -- TLS -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_node(amqp_url: str) -> Iterator[TlsNode]:
    """The second, TLS-only node (scripts/rabbitmq.sh with RENKEI_RABBITMQ_TLS_DIR); the shared
    plain node on 5673 is not touched."""
    node = TlsNode()
    node.start()
    yield node
    node.stop()


async def test_plain_text_and_a_wrong_ca_are_refused_by_the_tls_node(tls_node: TlsNode, tmp_path: Path) -> None:
    url = f"amqps://guest:guest@localhost:{tls_node.port}/"
    good = AmqpBroker(url, ssl_context=broker_context(tls_node.ca), connect_timeout=10)
    await good.connect()
    await good.close()
    plain = AmqpBroker(f"amqp://guest:guest@localhost:{tls_node.port}/", connect_timeout=5)
    with pytest.raises(BrokerError):
        await plain.connect()
    other_ca, _, _ = make_ca(tmp_path / "other", "a CA the broker's certificate is not from")
    wrong = AmqpBroker(url, ssl_context=broker_context(other_ca), connect_timeout=10)
    with pytest.raises(BrokerError):
        await wrong.connect()


async def test_a_change_goes_through_with_tls_on_https_and_amqps(tls_node: TlsNode, tmp_path: Path,
                                                                catalog: Catalog) -> None:
    """`renkei run` with TLS switched on in renkei.toml: the intake serves https only (plain
    http fails, a client that trusts the CA gets 202 with A's token), the bus talks amqps to
    the TLS node, and A's change lands in A's file destination only."""
    vhost = f"renkei-tls-{uuid.uuid4().hex[:6]}"
    tls_node.vhost(vhost)
    token = "tls-token-" + "k" * 40
    (tmp_path / "token").write_text(token)
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "zei.yaml").write_text(ROUTES, encoding="utf-8")
    certs = tls_node.certs
    lines = ["[bus]", f'broker_url = "amqps://guest:guest@localhost:{tls_node.port}/{vhost}"',
             f'broker_ca_file = "{certs / "ca.pem"}"', 'state_dir = "var"', 'routes_dir = "routes"',
             f'municipalities = ["{A}", "{B}"]', "", "[intake]", "http_port = 0",
             f'tls_cert_file = "{certs / "intake.pem"}"', f'tls_key_file = "{certs / "intake.key"}"', "",
             f"[sources.jumin-{A}]", f'municipalities = ["{A}"]', 'token_file = "token"', ""]
    for code in (A, B):
        lines += [f"[destinations.zei-{code}]", 'transport = "file"', f'directory = "out/zei-{code}"',
                  'system = "zei"', f'municipality = "{code}"', ""]
    config = tmp_path / "renkei.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    bus = await BusProcess.start(config)
    try:
        url = (await bus.wait_for(r"intake listening on (https://\S+)")).group(1)
        body, _ = change_of(catalog, A, 21)
        headers = {"Content-Type": "application/xml", "Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient() as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.post(url.replace("https://", "http://"), content=body, headers=headers)
        trusting = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        async with httpx.AsyncClient(verify=trusting) as client:
            response = await client.post(url, content=body, headers=headers)
            assert response.status_code == 202, response.text
            refused = await client.post(url, content=body, headers={"Content-Type": "application/xml"})
            assert refused.status_code == 401
        other_ca, _, _ = make_ca(tmp_path / "other")
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(other_ca))) as wrong:
            with pytest.raises(httpx.ConnectError):
                await wrong.post(url, content=body, headers=headers)

        async def delivered() -> bool:
            return any((tmp_path / "out" / f"zei-{A}").glob("*.xml"))

        await eventually(delivered, "A's change delivered over amqps", within=60)
        assert not (tmp_path / "out" / f"zei-{B}").exists() or not any((tmp_path / "out" / f"zei-{B}").glob("*.xml"))
    finally:
        assert await bus.stop() == 0, bus.output[-3000:]
        tls_node.drop_vhost(vhost)
