"""The simulators take batches (adapters.simulators.batch) as well as single messages: each item
checked and applied once per Idempotency-Key, answered item by item; a whole-request failure
answered for the request; one item refused (or to be retried) when told so."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import namespace_validator, plain_outbound

from adapters.simulators import SimulatorState, create_app
from adapters.transports.http import envelope_headers
from adapters.transports.httpbatch import BATCH_CONTENT_TYPE, encode_batch
from bus.ports import Outbound


@pytest.fixture
def app() -> Starlette:
    return create_app("zei", validate=namespace_validator)


@pytest.fixture
async def zei(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zei") as client:
        yield client


def sim(app: Starlette) -> SimulatorState:
    state: SimulatorState = app.state.simulator
    return state


async def batch(client: httpx.AsyncClient, *messages: Outbound, content: bytes | None = None) -> httpx.Response:
    return await client.post("/messages", content=content if content is not None else encode_batch(messages, "xml"),
                             headers={"Content-Type": BATCH_CONTENT_TYPE})


def statuses(response: httpx.Response) -> list[str]:
    items: list[dict[str, Any]] = response.json()["items"]
    return [item["status"] for item in items]


async def test_each_item_is_applied_once_and_a_key_seen_before_alone_or_in_a_batch_is_a_duplicate(
        zei: httpx.AsyncClient, app: Starlette) -> None:
    alone, first, second = plain_outbound(), plain_outbound(), plain_outbound()
    headers = {**envelope_headers(alone), "Content-Type": "application/xml"}
    await zei.post("/messages", content=alone.xml, headers=headers)
    answer = await batch(zei, first, alone, second, first)
    assert answer.status_code == 200 and statuses(answer) == ["applied", "duplicate", "applied", "duplicate"]
    assert (sim(app).effects, sim(app).duplicates, sim(app).batches, sim(app).requests) == (3, 2, 1, 2)
    kept = sim(app).messages[first.envelope.idempotency_key]
    assert (kept.subject, kept.sequence, kept.message_id) == (first.envelope.subject, first.envelope.sequence,
                                                              first.envelope.message_id)


async def test_told_to_refuse_one_key_that_item_alone_is_rejected(zei: httpx.AsyncClient, app: Starlette) -> None:
    messages = [plain_outbound() for _ in range(3)]
    sim(app).control(mode="reject", key=messages[1].envelope.idempotency_key)
    answer = await batch(zei, *messages)
    assert statuses(answer) == ["applied", "rejected", "applied"]
    assert answer.json()["items"][1]["issues"][0]["code"] == "S422"
    assert (sim(app).effects, sim(app).rejected) == (2, 1)


async def test_told_to_fail_one_key_that_item_alone_is_to_be_retried(zei: httpx.AsyncClient, app: Starlette) -> None:
    messages = [plain_outbound() for _ in range(2)]
    sim(app).control(mode="fail", key=messages[0].envelope.idempotency_key, count=1)
    answer = await batch(zei, *messages)
    assert statuses(answer) == ["retry", "applied"] and answer.json()["items"][0]["retry_after"] == 1
    assert statuses(await batch(zei, *messages)) == ["applied", "duplicate"]


async def test_a_failing_receiver_fails_the_whole_request_with_no_effect(zei: httpx.AsyncClient,
                                                                        app: Starlette) -> None:
    sim(app).control(mode="fail", fail_status=429, count=1)
    answer = await batch(zei, plain_outbound(), plain_outbound())
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
    assert sim(app).effects == 0
    assert statuses(await batch(zei, plain_outbound())) == ["applied"]


async def test_an_invalid_item_is_rejected_with_its_code_and_the_others_applied(
        zei: httpx.AsyncClient, app: Starlette) -> None:
    wrong_kind = plain_outbound(kind="kokuho.jumin")
    answer = await batch(zei, plain_outbound(), wrong_kind)
    assert statuses(answer) == ["applied", "rejected"]
    assert answer.json()["items"][1]["issues"][0]["code"] == "R220"


async def test_a_rejected_subject_is_rejected_item_by_item(zei: httpx.AsyncClient, app: Starlette) -> None:
    a, b = plain_outbound(), plain_outbound()
    sim(app).control(mode="reject", reject_subject=a.envelope.subject)
    assert statuses(await batch(zei, a, b)) == ["rejected", "rejected"]  # plain_outbound: one subject
    sim(app).control(mode="reject", reject_subject="0" * 32)
    assert statuses(await batch(zei, a, b)) == ["applied", "applied"]


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"items": []}', b'{"items": [{"body": "x"}]}'])
async def test_a_malformed_batch_is_refused_whole_and_says_what_is_wrong(zei: httpx.AsyncClient, app: Starlette,
                                                                        content: bytes) -> None:
    answer = await batch(zei, content=content)
    assert answer.status_code == 400 and answer.json()["issues"][0]["code"] == "S410"
    assert sim(app).effects == 0
