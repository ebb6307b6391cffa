"""bus.client against a real bus: `renkei run --with-simulators` as a process, changes put in
through its HTTP intake (HttpClient) and through its AMQP intake on a real RabbitMQ
(AmqpClient, kombu), each batch reaching exactly the simulators the routes name."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from run_support import BusProcess, eventually, expected_deliveries, free_ports, invalid_change, write_config
from tenants_support import Tenant, bus_user, rabbitmq

from adapters.simulators import SYSTEMS
from bus.catalog import Catalog
from bus.client import AmqpClient, BatchProgress, HttpClient, PublishRefused, PublishUnavailable, RetryOptions
from bus.errors import TransientError
from bus.synthetic.samples import sample_records

pytestmark = pytest.mark.integration
MUNICIPALITY = "131016"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "publish_changes.py"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def records(catalog: Catalog, n: int, seed: int) -> list[dict[str, Any]]:
    return list(sample_records("jumin.idou", catalog, seed=seed, n=n, municipality=MUNICIPALITY))


def simulator_destinations() -> dict[str, str]:
    ports = dict(zip(sorted(SYSTEMS), free_ports(len(SYSTEMS)), strict=True))
    return {name: f"http://127.0.0.1:{port}/messages" for name, port in ports.items()}


async def every_destination_receives(destinations: dict[str, str], expected: dict[str, set[str]]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:

        async def received(name: str) -> set[str]:
            held = (await client.get(destinations[name].replace("/messages", "/received"))).json()
            return {m["message_id"] for m in held["messages"]}

        async def all_arrived() -> bool:
            return all([await received(name) == ids for name, ids in expected.items()])

        await eventually(all_arrived, "every simulator holds what the routes send it")


async def test_an_http_batch_reaches_every_expected_destination_with_typed_answers(
    tmp_path: Path, catalog: Catalog
) -> None:
    destinations = simulator_destinations()
    config = write_config(tmp_path / "renkei.toml", destinations=destinations)
    batch = records(catalog, 10, seed=11)
    expected = expected_deliveries(catalog, batch)
    bus = await BusProcess.start(config, "--with-simulators")
    try:
        intake = (await bus.wait_for(r"intake listening on (\S+)")).group(1)
        await bus.wait_for(r"renkei run: ready")
        seen: list[BatchProgress] = []

        def vendor_job() -> tuple[Any, ...]:
            with HttpClient(intake.removesuffix("/v1/messages"), catalog=catalog) as client:
                result = client.publish_batch(batch, kind="jumin.idou", progress=seen.append)
                again = client.publish(batch[0], kind="jumin.idou")
                local = client.publish(invalid_change(catalog, batch[1]))
            with HttpClient(intake, catalog=catalog, validate_first=False) as unchecked:
                remote = unchecked.publish(invalid_change(catalog, batch[2]))
            return result, again, local, remote

        result, again, local, remote = await asyncio.to_thread(vendor_job)
        assert result.counts() == {"accepted": 10}
        assert all(a.message_id for a in result.answers)
        assert [(p.done, p.total) for p in seen] == [(i, 10) for i in range(1, 11)]
        assert (again.status, again.message_id) == ("duplicate", result.answers[0].message_id)
        assert (local.status, local.sent) == ("rejected", False)
        assert (remote.status, remote.sent) == ("rejected", True)
        assert {i.code for i in local.issues} == {i.code for i in remote.issues} == {"R402"}
        await every_destination_receives(destinations, expected)

        example = await asyncio.to_thread(
            subprocess.run, [sys.executable, str(EXAMPLE), "--http", intake, "--synthetic", "12"],
            capture_output=True, text=True, timeout=120)
        assert example.returncode == 0, example.stdout + example.stderr
        assert example.stdout.splitlines()[-1] == "accepted 12"
        assert "10/12 published" in example.stdout
    finally:
        await bus.stop()


def test_an_http_client_with_nothing_listening_retries_then_says_unavailable(catalog: Catalog) -> None:
    (port,) = free_ports(1)
    client = HttpClient(f"http://127.0.0.1:{port}", catalog=catalog,
                        retry=RetryOptions(attempts=3, first_wait=0.01, max_wait=0.05))
    with client, pytest.raises(PublishUnavailable, match="ConnectError"):
        client.publish(records(catalog, 1, seed=2)[0], kind="jumin.idou")


# -- AMQP: a vendor user in its municipality's vhost, the bus's AMQP intake there -----------


@pytest.fixture(scope="module")
def tenant(amqp_url: str) -> Iterator[Tenant]:
    made = Tenant(MUNICIPALITY, uuid.uuid4().hex[:6])
    made.create()
    yield made
    made.drop()


@pytest.fixture(scope="module")
def bus_url(amqp_url: str, tenant: Tenant) -> Iterator[str]:
    core = f"renkei-client-{uuid.uuid4().hex[:6]}"
    rabbitmq("vhost", core)
    with bus_user(amqp_url, core[-6:], [core, tenant.vhost]) as url:
        yield url
    rabbitmq("drop-vhost", core)


def amqp_config(path: Path, bus_url: str, tenant: Tenant, destinations: dict[str, str]) -> Path:
    write_config(path, destinations=destinations, broker_url=bus_url)
    text = path.read_text(encoding="utf-8").replace(
        "http_port = 0", f'http_port = 0\namqp_vhosts = {{ "{MUNICIPALITY}" = "{tenant.vhost}" }}')
    text += (f'\n[sources.jumin]\nmunicipalities = ["{MUNICIPALITY}"]\namqp_user = "{tenant.user}"\n')
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.amqp
async def test_a_kombu_batch_reaches_every_expected_destination(
    tmp_path: Path, catalog: Catalog, amqp_url: str, tenant: Tenant, bus_url: str
) -> None:
    destinations = simulator_destinations()
    config = amqp_config(tmp_path / "renkei.toml", bus_url, tenant, destinations)
    batch = records(catalog, 8, seed=21)
    expected = expected_deliveries(catalog, batch)
    bus = await BusProcess.start(config, "--with-simulators")
    try:
        await bus.wait_for(r"renkei run: ready")
        seen: list[int] = []

        def vendor_job() -> tuple[Any, ...]:
            with AmqpClient(tenant.url(amqp_url), catalog=catalog, timeout=30) as client:
                result = client.publish_batch(batch, kind="jumin.idou", progress=lambda p: seen.append(p.done))
                again = client.publish(catalog.get("jumin.idou").to_xml(batch[0]))
                local = client.publish(invalid_change(catalog, batch[1]))
            return result, again, local

        result, again, local = await asyncio.to_thread(vendor_job)
        assert result.counts() == {"accepted": 8}, result.answers
        assert seen == list(range(1, 9))
        assert (again.status, again.message_id) == ("duplicate", result.answers[0].message_id)
        assert (local.status, local.sent, local.attempts) == ("rejected", False, 0)
        await every_destination_receives(destinations, expected)
    finally:
        await bus.stop()


@pytest.mark.amqp
def test_a_kombu_client_without_an_intake_queue_is_told_so(amqp_url: str, catalog: Catalog) -> None:
    """No bus ever consumed this vhost (no renkei.submit queue): mandatory routing returns the message."""
    lonely = Tenant(MUNICIPALITY, uuid.uuid4().hex[:6])
    lonely.create()
    try:
        client = AmqpClient(lonely.url(amqp_url), catalog=catalog, timeout=5,
                            retry=RetryOptions(attempts=2, first_wait=0.01, max_wait=0.05))
        with client, pytest.raises(PublishUnavailable, match="unroutable"):
            client.publish(records(catalog, 1, seed=3)[0], kind="jumin.idou")
    finally:
        lonely.drop()


@pytest.mark.amqp
def test_a_kombu_client_with_a_wrong_password_is_refused_not_retried(
    amqp_url: str, tenant: Tenant, catalog: Catalog
) -> None:
    client = AmqpClient(tenant.url(amqp_url, password="wrong"), catalog=catalog,
                        retry=RetryOptions(attempts=5, first_wait=1, max_wait=1))
    with client, pytest.raises(PublishRefused, match="refused") as refused:
        client.publish(records(catalog, 1, seed=4)[0], kind="jumin.idou")
    assert not isinstance(refused.value, TransientError)  # the retry predicate takes TransientError only
