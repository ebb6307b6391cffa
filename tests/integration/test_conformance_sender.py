"""The sender conformance kit: a registry that sends well passes; each way of sending badly
fails the check named for it. Senders publish with bus.client.HttpClient to the kit's intake
served by uvicorn on loopback, and to `renkei conformance sender` as a process."""

from __future__ import annotations

import asyncio
import copy
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from processes import free_ports

from adapters.simulators import EmbeddedServer
from bus.catalog import Catalog
from bus.client import HttpClient
from bus.conformance.sender import SenderCheck, create_sender_app
from bus.synthetic.samples import sample_records

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture
async def kit(catalog: Catalog) -> AsyncIterator[tuple[SenderCheck, str]]:
    check = SenderCheck(catalog)
    server = EmbeddedServer(create_sender_app(check))
    await server.start()
    try:
        yield check, server.url
    finally:
        await server.stop()


def registry(catalog: Catalog, n: int = 40, seed: int = 8) -> list[dict[str, Any]]:
    return list(sample_records("jumin.idou", catalog, seed=seed, n=n))


async def send(url: str, catalog: Catalog, changes: list[Any]) -> list[str]:
    def job() -> list[str]:
        with HttpClient(url, catalog=catalog, validate_first=False) as client:
            answers = [client.publish(c if isinstance(c, bytes) else catalog.get("jumin.idou").to_xml(c))
                       for c in changes]
        return [a.status for a in answers]

    return await asyncio.to_thread(job)


async def test_a_registry_that_sends_its_changes_in_order_passes(kit: tuple[SenderCheck, str],
                                                                 catalog: Catalog) -> None:
    check, url = kit
    changes = registry(catalog)
    statuses = await send(url, catalog, [*changes, changes[0]])
    assert statuses == ["accepted"] * len(changes) + ["duplicate"]
    report = check.report()
    assert report.passed, report.to_text()
    assert report.check("messages_received").evidence == [f"{len(changes) + 1} messages, {len(changes) + 1} valid, "
                                                          f"{len({c['address_number'] for c in changes})} residents"]


def tampered(record: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copied = copy.deepcopy(record)
    change(copied)
    return copied


async def test_each_bad_sending_habit_fails_its_own_check(kit: tuple[SenderCheck, str], catalog: Catalog) -> None:
    check, url = kit
    first, second = registry(catalog, n=2, seed=9)
    later = tampered(first, lambda r: r.update(history_number=r["history_number"] + 5))
    earlier = tampered(first, lambda r: r.update(history_number=r["history_number"] + 2))
    changed = tampered(first, lambda r: r["name"].update(given_name="改変"))
    unsent = second["history_number"] - 1  # this resident's earlier 履歴番号, never sent here
    assert unsent >= 1
    cancel = tampered(second, lambda r: (r.update(history_number=r["history_number"] + 1),
                                         r["change"].update(reason="TORIKESHI", cancelled_history_number=unsent)))
    invalid = catalog.get("jumin.idou").to_xml(first).replace(b"<history_number>", b"<history_numbr>", 1)
    statuses = await send(url, catalog, [first, later, earlier, changed, second, cancel, invalid])
    assert statuses == ["accepted", "accepted", "accepted", "duplicate", "accepted", "accepted", "rejected"]
    report = check.report()
    assert set(report.failed_names()) == {"every_message_valid", "history_number_increasing",
                                          "no_duplicate_id_with_different_body",
                                          "corrections_refer_to_known_history"}, report.to_text()
    text = report.to_text()
    assert "message 3, resident #1, 履歴番号" in text and f"cancels 履歴番号 {unsent}, which" in text
    for personal in (first["address_number"], first["name"]["family_name"], "改変"):
        assert str(personal) not in text


async def test_the_cli_kit_stops_after_count_and_writes_its_reports(tmp_path: Path, catalog: Catalog) -> None:
    (port,) = free_ports(1)
    junit, page = tmp_path / "sender.xml", tmp_path / "sender.html"
    renkei = str(Path(sys.executable).with_name("renkei"))
    process = await asyncio.create_subprocess_exec(
        renkei, "conformance", "sender", "--port", str(port), "--count", "5", "--junit", str(junit),
        "--html", str(page), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
    assert line.strip() == f"sender kit listening on http://127.0.0.1:{port}/v1/messages"
    statuses = await send(f"http://127.0.0.1:{port}", catalog, registry(catalog, n=5, seed=4))
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert statuses == ["accepted"] * 5
    assert process.returncode == 0, out.decode()
    assert "[PASS] history_number_increasing" in out.decode()
    assert ET.fromstring(junit.read_bytes()).get("failures") == "0"
    assert "PASSED" in page.read_text(encoding="utf-8")


def test_a_kit_that_received_nothing_fails(catalog: Catalog) -> None:
    report = SenderCheck(catalog).report()
    assert report.failed_names() == ["messages_received"]
    assert report.check("history_number_increasing").outcome == "not applicable"
