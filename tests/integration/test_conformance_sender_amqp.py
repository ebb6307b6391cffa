"""The sender kit over AMQP, on a real RabbitMQ: a registry that publishes with bus.client.AmqpClient
(kombu) gets the bus's answers from the kit, and each bad habit fails its own check, in process
and from `renkei conformance sender --amqp` as a process."""

from __future__ import annotations

import asyncio
import copy
import sys
from pathlib import Path
from typing import Any

import pytest

from bus.catalog import Catalog
from bus.client import AmqpClient
from bus.conformance.sender import SenderCheck
from bus.conformance.sender_amqp import amqp_sender
from bus.synthetic.samples import sample_records

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture
def vhost_url(amqp_vhost_url: str) -> str:
    """A vhost of the test broker made for this module (the vendor's test broker, in real life)."""
    return amqp_vhost_url


async def publish(url: str, catalog: Catalog, changes: list[Any]) -> list[str]:
    def job() -> list[str]:
        with AmqpClient(url, catalog=catalog, validate_first=False, timeout=30) as client:
            return [client.publish(c if isinstance(c, bytes) else catalog.get("jumin.idou").to_xml(c)).status
                    for c in changes]

    return await asyncio.to_thread(job)


async def test_a_kombu_publisher_gets_the_kits_answers_and_each_bad_habit_its_check(
        vhost_url: str, catalog: Catalog) -> None:
    first, second = sample_records("jumin.idou", catalog, seed=9, n=2)
    earlier = copy.deepcopy(first)
    earlier["history_number"] = first["history_number"] + 2
    later = copy.deepcopy(first)
    later["history_number"] = first["history_number"] + 5
    invalid = catalog.get("jumin.idou").to_xml(second).replace(b"<history_number>", b"<history_numbr>", 1)
    check = SenderCheck(catalog)
    async with amqp_sender(check, vhost_url):
        statuses = await publish(vhost_url, catalog, [first, second, later, earlier, first, invalid])
    assert statuses == ["accepted", "accepted", "accepted", "accepted", "duplicate", "rejected"]
    report = check.report()
    assert set(report.failed_names()) == {"every_message_valid", "history_number_increasing"}, report.to_text()
    assert str(first["address_number"]) not in report.to_text()


async def test_the_cli_kit_consumes_over_amqp_and_stops_after_count(vhost_url: str, catalog: Catalog) -> None:
    renkei = str(Path(sys.executable).with_name("renkei"))
    process = await asyncio.create_subprocess_exec(
        renkei, "conformance", "sender", "--amqp", vhost_url, "--count", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
    assert line.startswith("sender kit consuming renkei.submit at amqp://") and ":guest@" not in line
    statuses = await publish(vhost_url, catalog, list(sample_records("jumin.idou", catalog, seed=4, n=3)))
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert statuses == ["accepted"] * 3
    assert process.returncode == 0, out.decode()
    assert "[PASS] history_number_increasing" in out.decode()
