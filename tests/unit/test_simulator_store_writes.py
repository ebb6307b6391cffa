"""A simulator's store is written off the event loop, before the answer (issue 10: in `renkei run
--with-simulators` the store's writes held every request of the process).

The writes are made to wait on a gate (`_write_file` patched); the loop must still answer other
requests meanwhile, and the waiting request must answer only once its message is written."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import namespace_validator, plain_outbound

from adapters.simulators import create_app
from adapters.simulators import state as state_module
from adapters.simulators.state import read_journal, read_received
from adapters.transports.http import envelope_headers
from bus.ports import Outbound


def _headers(message: Outbound) -> dict[str, str]:
    return {**envelope_headers(message), "Content-Type": "application/xml"}


async def test_a_slow_file_write_holds_its_own_answer_and_no_other_request(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real = state_module._write_file

    def gated(path: str, data: bytes, flags: int) -> None:
        gate.wait(timeout=3.0)  # on the event loop (the old code) this held every request
        real(path, data, flags)

    monkeypatch.setattr(state_module, "_write_file", gated)
    app = create_app("zei", validate=namespace_validator, store=str(tmp_path))
    message = plain_outbound()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zei") as client:
        posting = asyncio.create_task(client.post("/messages", content=message.xml, headers=_headers(message)))
        await asyncio.sleep(0.2)  # the POST is in its write now
        health = await asyncio.wait_for(client.get("/healthz"), 2.0)
        assert health.status_code == 200
        assert not posting.done(), "the answer came before its message was written"
        assert read_received(tmp_path) == []
        gate.set()
        answer = await asyncio.wait_for(posting, 5.0)
    assert answer.json()["status"] == "applied"
    assert [body for _, body in read_received(tmp_path)] == [message.xml]


async def test_concurrent_requests_are_written_in_the_order_they_were_applied_and_a_twin_waits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_write = threading.Event()
    release = threading.Event()
    real = state_module._write_file

    def slow_first(path: str, data: bytes, flags: int) -> None:
        if not first_write.is_set():
            first_write.set()
            release.wait(timeout=3.0)
        real(path, data, flags)

    monkeypatch.setattr(state_module, "_write_file", slow_first)
    app = create_app("zei", validate=namespace_validator, store=str(tmp_path))
    messages = [plain_outbound(message_id=f"m{n}") for n in range(4)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zei") as client:
        first = asyncio.create_task(client.post("/messages", content=messages[0].xml, headers=_headers(messages[0])))
        await asyncio.sleep(0.2)  # m0's write has started and waits
        twin = asyncio.create_task(client.post("/messages", content=messages[0].xml, headers=_headers(messages[0])))
        rest = [asyncio.create_task(client.post("/messages", content=m.xml, headers=_headers(m)))
                for m in messages[1:]]
        await asyncio.sleep(0.2)
        assert not twin.done(), "a duplicate was answered before the message it repeats was written"
        release.set()
        answers = [(await asyncio.wait_for(t, 5.0)).json()["status"] for t in (first, twin, *rest)]
    assert answers == ["applied", "duplicate", "applied", "applied", "applied"]
    assert [meta["key"] for meta in read_journal(tmp_path)] == [m.envelope.idempotency_key for m in messages]
    assert [meta["number"] for meta in read_journal(tmp_path)] == [1, 2, 3, 4]
