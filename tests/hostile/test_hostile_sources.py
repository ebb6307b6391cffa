"""The hostile corpus through the bus's real entry points — the HTTP intake and the directory
source, in front of a running bus on the embedded broker: every attack is answered with its
code (422 / a result file in rejected/), reads no file, opens no socket, leaves nothing of the
canary in any answer, the log or the audit trail, and the very next valid change is accepted
and delivered."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import structlog
from test_hostile_input import CANARY_TEXT, CORPUS, DEFAULT_LIMITS, GENERATED_XML, XML_CORPUS, Case, Listener, fill

from adapters.simulators.cluster import EmbeddedServer
from adapters.sources.directory import DirectorySource
from adapters.sources.http_intake import create_intake_app
from bus.app import Bus
from bus.catalog import Catalog
from bus.logs import configure_logging
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import BusSettings, Settings
from bus.synthetic.samples import sample_records

#: the generated cases a source can meet (the configurable limits are the validator's business)
SOURCE_CASES = [c for c in GENERATED_XML if c.limits == DEFAULT_LIMITS]


@dataclass
class Running:
    bus: Bus
    intake_url: str
    inbox: Path
    source: DirectorySource
    delivered: list[Outbound]
    valid: list[bytes]
    log: io.StringIO


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    log = io.StringIO()
    configure_logging("json", "debug", stream=log)
    catalog = Catalog.load()
    delivered: list[Outbound] = []
    sink = FunctionSink(lambda m: delivered.append(m) or Receipt.applied(m))  # type: ignore[func-returns-value]
    bus = Bus(Settings(bus=BusSettings(state_dir=tmp_path / "var")), sinks={"zei": sink}, catalog=catalog)
    await bus.start()
    server = EmbeddedServer(create_intake_app(bus.intake, default_source="hostile-http"))
    await server.start()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = DirectorySource(inbox, bus.intake, source="hostile-dir", catalog=catalog)
    ks = catalog.get("jumin.idou")
    valid = [ks.to_xml(r) for r in sample_records("jumin.idou", catalog, seed=77, n=80)]
    try:
        yield Running(bus, f"{server.url}/v1/messages", inbox, source, delivered, valid, log)
    finally:
        await server.stop()
        await bus.stop()
        structlog.reset_defaults()


def corpus_cases(canary: Path, listener: Listener) -> list[Case]:
    files = [Case(name, fill((CORPUS / name).read_bytes(), canary, listener), code)
             for name, code in sorted(XML_CORPUS.items())]
    return files + SOURCE_CASES


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "canary.txt"
    path.write_text(CANARY_TEXT, encoding="utf-8")
    return path


async def test_every_attack_through_the_http_intake_is_refused_and_the_next_change_goes_through(
    running: Running, canary: Path
) -> None:
    listener = Listener()
    cases = corpus_cases(canary, listener)
    answers: list[str] = []
    async with httpx.AsyncClient(timeout=30) as client:
        for case, good in zip(cases, running.valid, strict=False):
            bad = await client.post(running.intake_url, content=case.raw, headers={"content-type": case.content_type})
            assert bad.status_code in (413, 422), (case.name, bad.status_code, bad.text)
            assert case.code in {i["code"] for i in bad.json()["issues"]}, (case.name, bad.text)
            answers.append(bad.text)
            ok = await client.post(running.intake_url, content=good, headers={"content-type": "application/xml"})
            assert ok.status_code == 202, (case.name, ok.text)
    assert await running.bus.wait_idle(within=60)
    assert len(running.delivered) == len(cases)  # every valid change after an attack reached the tax system
    assert listener.connections() == 0
    _assert_no_canary(running, answers)


async def test_every_attack_dropped_into_the_inbox_is_rejected_beside_it_and_the_next_file_goes_through(
    running: Running, canary: Path
) -> None:
    listener = Listener()
    cases = corpus_cases(canary, listener)
    for n, (case, good) in enumerate(zip(cases, running.valid, strict=False)):
        (running.inbox / f"{n:03d}-a-{case.name}.xml").write_bytes(case.raw)
        (running.inbox / f"{n:03d}-b-valid.xml").write_bytes(good)
    results = await running.source.run_once()
    assert len(results) == 2 * len(cases)
    answers = []
    for n, case in enumerate(cases):
        result_file = running.inbox / "rejected" / f"{n:03d}-a-{case.name}.xml.result.json"
        text = result_file.read_text(encoding="utf-8")
        answers.append(text)
        assert case.code in {i["code"] for i in json.loads(text)["issues"]}, (case.name, text)
        assert (running.inbox / "processed" / f"{n:03d}-b-valid.xml").exists(), case.name
    assert await running.bus.wait_idle(within=60)
    assert len(running.delivered) == len(cases)
    assert listener.connections() == 0
    _assert_no_canary(running, answers)


def _assert_no_canary(running: Running, answers: list[str]) -> None:
    audit = b"".join(p.read_bytes() for p in running.bus.settings.bus.state_dir.glob("audit.sqlite*"))
    for where, text in (("answers", "\n".join(answers)), ("log", running.log.getvalue()),
                        ("audit", audit.decode("utf-8", "replace"))):
        assert CANARY_TEXT not in text, where
