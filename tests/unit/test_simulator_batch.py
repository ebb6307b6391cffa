"""The simulators take batches (adapters.simulators.batch) as well as single messages: each item
checked and applied once per Idempotency-Key, answered item by item; a whole-request failure
answered for the request; one item refused (or to be retried) when told so."""

# ruff: noqa: F811  (the fixtures are imported from the one-by-one tests, then requested by name)
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import plain_outbound
from test_simulator import state_of, zei, zei_app  # noqa: F401  (the simulator app and its client, shared)

from adapters.transports.http import envelope_headers
from adapters.transports.httpbatch import BATCH_CONTENT_TYPE, encode_batch
from bus.ports import Outbound


async def batch(client: httpx.AsyncClient, *messages: Outbound, content: bytes | None = None) -> httpx.Response:
    return await client.post("/messages", content=content if content is not None else encode_batch(messages, "xml"),
                             headers={"Content-Type": BATCH_CONTENT_TYPE})


def statuses(response: httpx.Response) -> list[str]:
    items: list[dict[str, Any]] = response.json()["items"]
    return [item["status"] for item in items]


async def test_each_item_is_applied_once_and_a_key_seen_before_alone_or_in_a_batch_is_a_duplicate(
        zei: httpx.AsyncClient, zei_app: Starlette) -> None:
    alone, first, second = plain_outbound(), plain_outbound(), plain_outbound()
    headers = {**envelope_headers(alone), "Content-Type": "application/xml"}
    await zei.post("/messages", content=alone.xml, headers=headers)
    answer = await batch(zei, first, alone, second, first)
    assert answer.status_code == 200 and statuses(answer) == ["applied", "duplicate", "applied", "duplicate"]
    sim = state_of(zei_app)
    assert (sim.effects, sim.duplicates, sim.batches, sim.requests) == (3, 2, 1, 2)
    kept = sim.messages[first.envelope.idempotency_key]
    assert (kept.subject, kept.sequence, kept.message_id) == (first.envelope.subject, first.envelope.sequence,
                                                              first.envelope.message_id)


async def test_told_to_refuse_one_key_that_item_alone_is_rejected(zei: httpx.AsyncClient,
                                                                  zei_app: Starlette) -> None:
    messages = [plain_outbound() for _ in range(3)]
    state_of(zei_app).control(mode="reject", key=messages[1].envelope.idempotency_key)
    answer = await batch(zei, *messages)
    assert statuses(answer) == ["applied", "rejected", "applied"]
    assert answer.json()["items"][1]["issues"][0]["code"] == "S422"
    assert (state_of(zei_app).effects, state_of(zei_app).rejected) == (2, 1)


async def test_told_to_fail_one_key_that_item_alone_is_to_be_retried(zei: httpx.AsyncClient,
                                                                     zei_app: Starlette) -> None:
    messages = [plain_outbound() for _ in range(2)]
    state_of(zei_app).control(mode="fail", key=messages[0].envelope.idempotency_key, count=1)
    answer = await batch(zei, *messages)
    assert statuses(answer) == ["retry", "applied"] and answer.json()["items"][0]["retry_after"] == 1
    assert statuses(await batch(zei, *messages)) == ["applied", "duplicate"]


async def test_a_failing_receiver_fails_the_whole_request_with_no_effect(zei: httpx.AsyncClient,
                                                                        zei_app: Starlette) -> None:
    state_of(zei_app).control(mode="fail", fail_status=429, count=1)
    answer = await batch(zei, plain_outbound(), plain_outbound())
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
    assert state_of(zei_app).effects == 0
    assert statuses(await batch(zei, plain_outbound())) == ["applied"]


async def test_an_invalid_item_is_rejected_with_its_code_and_the_others_applied(
        zei: httpx.AsyncClient, zei_app: Starlette) -> None:
    wrong_kind = plain_outbound(kind="kokuho.jumin")
    answer = await batch(zei, plain_outbound(), wrong_kind)
    assert statuses(answer) == ["applied", "rejected"]
    assert answer.json()["items"][1]["issues"][0]["code"] == "R220"


async def test_a_rejected_subject_is_rejected_item_by_item(zei: httpx.AsyncClient, zei_app: Starlette) -> None:
    a, b = plain_outbound(), plain_outbound()
    state_of(zei_app).control(mode="reject", reject_subject=a.envelope.subject)
    assert statuses(await batch(zei, a, b)) == ["rejected", "rejected"]  # plain_outbound: one subject
    state_of(zei_app).control(mode="reject", reject_subject="0" * 32)
    assert statuses(await batch(zei, a, b)) == ["applied", "applied"]


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"items": []}', b'{"items": [{"body": "x"}]}'])
async def test_a_malformed_batch_is_refused_whole_and_says_what_is_wrong(zei: httpx.AsyncClient, zei_app: Starlette,
                                                                        content: bytes) -> None:
    answer = await batch(zei, content=content)
    assert answer.status_code == 400 and answer.json()["issues"][0]["code"] == "S410"
    assert state_of(zei_app).effects == 0
