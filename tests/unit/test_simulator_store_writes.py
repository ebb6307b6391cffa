"""A simulator's store: one append per request, before the answer (issue 10).

Each message used to be a file of its own and a journal line, two writes per message: creating a
file cost 20–300 µs of the kernel's time on the test machines, and the demo's simulators created
six per change. Now a request's messages are lines of one log, written in one append before the
request is answered."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import namespace_validator, plain_outbound

from adapters.simulators import create_app
from adapters.simulators import state as state_module
from adapters.simulators.batch import BATCH_MEDIA
from adapters.simulators.state import LOG, read_journal, read_received
from adapters.transports.http import envelope_headers
from bus.ports import Outbound


def _item(message: Outbound) -> dict[str, object]:
    return {"idempotency_key": message.envelope.idempotency_key, "content_type": "application/xml",
            "body": message.xml.decode(), "message_id": message.envelope.message_id, "kind": message.envelope.kind}


async def test_a_batch_is_one_append_to_the_log_before_its_answer(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[tuple[str, bytes]] = []
    real = state_module._write_file

    def counted(path: str, data: bytes, flags: int) -> None:
        writes.append((path, data))
        real(path, data, flags)

    monkeypatch.setattr(state_module, "_write_file", counted)
    app = create_app("zei", validate=namespace_validator, store=str(tmp_path))
    messages = [plain_outbound(message_id=f"m{n}") for n in range(5)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zei") as client:
        answer = await client.post("/messages", content=json.dumps({"items": [_item(m) for m in messages]}),
                                   headers={"Content-Type": BATCH_MEDIA})
    assert [item["status"] for item in answer.json()["items"]] == ["applied"] * 5
    assert [Path(path).name for path, _ in writes] == [LOG]  # one write for the five, not two each
    assert writes[0][1].count(b"\n") == 5
    assert [body for _, body in read_received(tmp_path)] == [m.xml for m in messages]


async def test_requests_are_logged_in_the_order_they_were_applied_and_a_repeat_is_not_logged(
        tmp_path: Path) -> None:
    app = create_app("zei", validate=namespace_validator, store=str(tmp_path))
    messages = [plain_outbound(message_id=f"m{n}") for n in range(4)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zei") as client:
        statuses = []
        for message in (messages[0], messages[0], *messages[1:]):
            sent = {**envelope_headers(message), "Content-Type": "application/xml"}
            statuses.append((await client.post("/messages", content=message.xml, headers=sent)).json()["status"])
    assert statuses == ["applied", "duplicate", "applied", "applied", "applied"]
    assert [meta["key"] for meta in read_journal(tmp_path)] == [m.envelope.idempotency_key for m in messages]
    assert [meta["number"] for meta in read_journal(tmp_path)] == [1, 2, 3, 4]


async def test_a_write_that_fails_is_not_answered_as_applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: str, data: bytes, flags: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_module, "_write_file", full)
    app = create_app("zei", validate=namespace_validator, store=str(tmp_path))
    message = plain_outbound()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://zei") as client:
        sent = {**envelope_headers(message), "Content-Type": "application/xml"}
        answer = await client.post("/messages", content=message.xml, headers=sent)
    assert answer.status_code == 500  # the sender retries; nothing was said to be applied
    assert read_received(tmp_path) == []
