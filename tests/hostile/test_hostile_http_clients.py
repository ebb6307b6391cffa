"""The HTTP intake under hostile clients, in front of a running bus on the embedded broker:
malformed kinds, sources and content types answered 4xx with an audited rejection (never a
500, nothing kept without a `rejected` event), slow heads and bodies cut off, a cap on
connections, and a client that leaves mid-body leaving no traceback. Each test runs on both
request parsers (adapters/server.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from adapters.server import PARSERS
from adapters.sources.http_intake import HttpIntake
from bus.app import Bus
from bus.audit.events import EventType
from bus.catalog import Catalog
from bus.settings import BusSettings, Settings
from bus.synthetic.samples import sample_records


@dataclass
class Running:
    bus: Bus
    url: str
    host: str
    port: int
    valid: bytes

    def events(self, event: EventType) -> list[object]:
        return [r.event for r in self.bus.audit.store.records() if r.event.event == event]


@pytest.fixture(params=PARSERS)
async def running(tmp_path: Path, request: pytest.FixtureRequest,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    """The bus and its HTTP intake, once on each request parser (httptools, the default, and
    h11, the fallback: adapters/server.py)."""
    monkeypatch.setenv("RENKEI_HTTP_PARSER", request.param)
    catalog = Catalog.load()
    bus = Bus(Settings(bus=BusSettings(state_dir=tmp_path / "var")), sinks={}, catalog=catalog)
    await bus.start()
    intake = HttpIntake("127.0.0.1", 0, header_timeout=0.5, body_timeout=0.5, max_connections=4)
    valid = catalog.get("jumin.idou").to_xml(next(iter(sample_records("jumin.idou", catalog, seed=5, n=1))))
    try:
        async with intake.open(bus.intake, bus.gate):
            assert intake.url is not None
            parts = urlsplit(intake.url)
            assert parts.hostname is not None and parts.port is not None
            yield Running(bus, intake.url, parts.hostname, parts.port, valid)
    finally:
        await bus.stop()


async def _post(url: str, body: bytes, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url, content=body, headers={"Content-Type": "application/xml", **headers})


@pytest.mark.parametrize("kind", ["jumin idou", "jumin.idou\r\nX-Injected: 1", "123456789018", "jumin.idou "])
async def test_a_malformed_kind_is_4xx_with_an_audited_rejection(running: Running, kind: str) -> None:
    """A kind with a space or CR/LF gave a 500 and kept the body with no `rejected` event."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(running.url, params={"kind": kind}, content=running.valid,
                                     headers={"Content-Type": "application/xml"})
    assert 400 <= response.status_code < 500, response.text
    await running.bus.recorder.flush()
    rejected = running.events(EventType.REJECTED)
    assert len(rejected) == 1 and "R220" in rejected[0].codes  # type: ignore[attr-defined]
    assert rejected[0].kind is None  # type: ignore[attr-defined]
    assert "123456789018" not in repr(list(running.bus.audit.store.records()))


async def test_unknown_content_types_and_oversized_bodies_are_audited(running: Running) -> None:
    wrong = await _post(running.url, b"{}", **{"Content-Type": "application/json"})
    large = await _post(running.url, b"<x>" + b"a" * (2 * 1024 * 1024) + b"</x>")
    assert (wrong.status_code, large.status_code) == (415, 413)
    await running.bus.recorder.flush()
    codes = sorted(c for e in running.events(EventType.REJECTED) for c in e.codes)  # type: ignore[attr-defined]
    assert codes == ["R100", "R220"]


async def test_a_malformed_source_claim_is_400_and_audited(running: Running) -> None:
    response = await _post(running.url, running.valid, **{"X-Renkei-Source": "kiban system"})
    assert response.status_code == 400
    await running.bus.recorder.flush()
    assert len(running.events(EventType.FORBIDDEN)) == 1
    good = await _post(running.url, running.valid)
    assert good.status_code == 202


async def test_a_body_sent_one_byte_a_second_is_cut_off(running: Running) -> None:
    reader, writer = await asyncio.open_connection(running.host, running.port)
    writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: bus\r\nContent-Type: application/xml\r\n"
                 b"Content-Length: 1000\r\n\r\n<")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)  # the server answers and closes within the timeout
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")


async def test_a_head_sent_one_byte_a_second_is_cut_off(running: Running) -> None:
    reader, writer = await asyncio.open_connection(running.host, running.port)
    writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: b")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)  # closed: nothing more comes
    writer.close()
    assert answer == b""


async def test_connections_beyond_the_cap_are_answered_503(running: Running) -> None:
    idle = [await asyncio.open_connection(running.host, running.port) for _ in range(4)]
    try:
        response = await _post(running.url, running.valid)
        assert response.status_code == 503
    finally:
        for _, writer in idle:
            writer.close()
    await asyncio.sleep(0.2)
    assert (await _post(running.url, running.valid)).status_code == 202


async def test_a_client_leaving_mid_body_leaves_no_traceback(running: Running, caplog: pytest.LogCaptureFixture,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn's loggers do not propagate to the root
        logging.getLogger(name).addHandler(caplog.handler)
    sock = socket.create_connection((running.host, running.port))
    sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: bus\r\nContent-Type: application/xml\r\n"
                 b"Content-Length: 1000\r\n\r\n<ResidentChange")
    await asyncio.sleep(0.1)
    sock.close()
    await asyncio.sleep(0.3)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).removeHandler(caplog.handler)
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert "Traceback" not in text and "Exception in ASGI application" not in text
    assert (await _post(running.url, running.valid)).status_code == 202
