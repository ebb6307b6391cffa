"""The simulators of the receiving systems, driven in-process through their ASGI app.

These tests inject a stand-in validator so they need no schema catalog; the cluster tests
(test_simulator_cluster.py) run the real validator over real servers.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import namespace_validator, plain_outbound

from adapters.simulators import SimulatorState, create_app, personal_number_valid
from adapters.simulators.state import LOG, ReceivedMessage, read_journal, read_received
from adapters.transports.http import envelope_headers
from bus.errors import ConfigError
from bus.ports import Outbound


@pytest.fixture
def zei_app() -> Starlette:
    return create_app("zei", validate=namespace_validator)


@pytest.fixture
async def zei(zei_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=zei_app), base_url="http://zei") as client:
        yield client


def state_of(app: Starlette) -> SimulatorState:
    sim: SimulatorState = app.state.simulator
    return sim


async def post(client: httpx.AsyncClient, message: Outbound, **headers: str) -> httpx.Response:
    sent = {**envelope_headers(message), "Content-Type": "application/xml", **headers}
    return await client.post("/messages", content=message.xml, headers=sent)


async def test_a_valid_message_is_applied_once_and_a_repeat_is_a_duplicate(zei: httpx.AsyncClient) -> None:
    message = plain_outbound()
    first, second = await post(zei, message), await post(zei, message)
    assert first.status_code == 200 and first.json()["status"] == "applied"
    assert second.status_code == 200 and second.json()["status"] == "duplicate"
    assert second.json()["reference"] == first.json()["reference"]
    counts = (await zei.get("/received")).json()["counts"]
    assert (counts["effects"], counts["duplicates"], counts["held"]) == (1, 1, 1)


async def test_received_lists_ids_but_never_bodies(zei: httpx.AsyncClient) -> None:
    message = plain_outbound()
    await post(zei, message)
    listing = (await zei.get("/received")).json()
    assert listing["kind"] == "zei.jumin"
    assert listing["messages"][0]["key"] == message.envelope.idempotency_key
    assert listing["messages"][0]["message_id"] == message.envelope.message_id
    assert "髙橋" not in (await zei.get("/received")).text


async def test_a_message_of_another_kind_is_rejected(zei: httpx.AsyncClient, zei_app: Starlette) -> None:
    response = await post(zei, plain_outbound(kind="kokuho.jumin", destination="zei"))
    assert response.status_code == 422
    assert response.json()["issues"][0]["code"] == "R220"
    assert state_of(zei_app).rejected == 1 and state_of(zei_app).effects == 0


async def test_an_invalid_body_is_rejected_with_issues(zei: httpx.AsyncClient) -> None:
    message = plain_outbound()
    response = await zei.post(
        "/messages",
        content=b"<oops",
        headers={**envelope_headers(message), "Content-Type": "application/xml"},
    )
    assert response.status_code == 422 and response.json()["issues"][0]["code"] == "R200"


async def test_a_message_without_an_idempotency_key_is_refused(zei: httpx.AsyncClient) -> None:
    response = await zei.post(
        "/messages", content=plain_outbound().xml, headers={"Content-Type": "application/xml"}
    )
    assert response.status_code == 400


async def test_fail_count_fails_n_times_then_recovers(zei: httpx.AsyncClient, zei_app: Starlette) -> None:
    assert (
        await zei.post("/control", json={"mode": "fail", "fail_status": 503, "count": 2})
    ).status_code == 200
    message = plain_outbound()
    statuses = [(await post(zei, message)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert state_of(zei_app).failed == 2 and state_of(zei_app).effects == 1
    assert (await zei.get("/control")).json()["mode"] == "ok"


async def test_reject_subject_rejects_only_that_resident(zei: httpx.AsyncClient) -> None:
    await zei.post("/control", json={"mode": "reject", "reject_subject": "someone-else"})
    assert (await post(zei, plain_outbound())).status_code == 200
    await zei.post("/control", json={"mode": "reject", "reject_subject": plain_outbound().envelope.subject})
    response = await post(zei, plain_outbound())
    assert response.status_code == 422 and response.json()["issues"][0]["code"] == "S422"


async def test_ratio_fails_a_share_of_messages_repeatably(zei: httpx.AsyncClient) -> None:
    await zei.post("/control", json={"mode": "fail", "ratio": 0.3, "seed": 7})
    statuses = [(await post(zei, plain_outbound())).status_code for _ in range(50)]
    assert 5 <= statuses.count(503) <= 25 and statuses.count(200) == 50 - statuses.count(503)


async def test_slow_mode_delays_the_answer(zei: httpx.AsyncClient) -> None:
    await zei.post("/control", json={"mode": "slow", "delay": 0.2, "count": 1})
    started = time.monotonic()
    assert (await post(zei, plain_outbound())).status_code == 200
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    "settings", [{"mode": "sideways"}, {"fail_status": 200}, {"ratio": 2}, {"colour": "red"}, [1]]
)
async def test_bad_control_settings_are_refused(zei: httpx.AsyncClient, settings: Any) -> None:
    response = await zei.post("/control", json=settings)
    assert response.status_code == 400
    assert (await zei.get("/control")).json()["mode"] == "ok"


async def test_a_body_over_the_cap_is_413() -> None:
    app = create_app("zei", validate=namespace_validator, max_body=100)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zei") as client:
        response = await post(client, plain_outbound())
    assert response.status_code == 413


async def test_the_store_keeps_each_message_with_its_body_and_remembers_after_restart(tmp_path: Path) -> None:
    message = plain_outbound()
    for _ in range(2):  # the second app is the simulator restarted on the same store
        app = create_app("zei", validate=namespace_validator, store=str(tmp_path))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zei") as client:
            answers = (await post(client, message)).json()["status"]
    assert answers == "duplicate"
    [(meta, body)] = read_received(tmp_path)
    assert meta["key"] == message.envelope.idempotency_key and body == message.xml
    assert sorted(os.listdir(tmp_path)) == [LOG]  # one log, no file per message


def _received(key: str, body: bytes) -> ReceivedMessage:
    return ReceivedMessage(key=key, message_id=key[:2], kind="zei.jumin", municipality="131016", subject="s",
                           sequence=1, content_type="application/xml", body=body, reference="r")


def test_a_log_line_cut_short_by_a_crash_is_not_taken_as_applied(tmp_path: Path) -> None:
    body = b"<zei/>"
    first = SimulatorState("zei", store=tmp_path)
    for key in ("m1.zei", "m2.zei"):
        first.accept(_received(key, body))
    log = tmp_path / LOG
    log.write_bytes(log.read_bytes()[:-20])  # the second line torn: the process died writing it
    again = SimulatorState("zei", store=tmp_path)
    assert list(again.messages) == ["m1.zei"] and again.messages["m1.zei"].body == body
    assert [meta["key"] for meta in read_journal(tmp_path)] == ["m1.zei"]


def test_a_body_that_is_not_utf8_is_kept_byte_for_byte(tmp_path: Path) -> None:
    sjis = '<?xml version="1.0" encoding="Shift_JIS"?><zei>高橋</zei>'.encode("shift_jis")
    SimulatorState("zei", store=tmp_path).accept(_received("m1.zei", sjis))
    assert SimulatorState("zei", store=tmp_path).messages["m1.zei"].body == sjis
    assert [body for _, body in read_received(tmp_path)] == [sjis]


async def test_healthz_names_the_system_and_kind(zei: httpx.AsyncClient) -> None:
    assert (await zei.get("/healthz")).json() == {"status": "ok", "system": "zei", "kind": "zei.jumin"}


# -- 中間サーバー --------------------------------------------------------------------------


@pytest.fixture
async def chukan() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app("chukan", validate=namespace_validator)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chukan") as client:
        yield client


FUKUHON = {"integrated_address_number": "123456789018", "municipality_code": "131016", "history_number": 2}


async def test_chukan_takes_a_fukuhon_keyed_by_the_integrated_address_number(
    chukan: httpx.AsyncClient,
) -> None:
    message = plain_outbound(FUKUHON, kind="chukan.fukuhon", destination="chukan")
    assert (await post(chukan, message)).json()["status"] == "applied"


async def test_chukan_rejects_any_personal_number_element(chukan: httpx.AsyncClient) -> None:
    message = plain_outbound({**FUKUHON, "personal_number": "123456789018"}, kind="chukan.fukuhon")
    response = await post(chukan, message)
    assert response.status_code == 422
    assert response.json()["issues"][0]["code"] == "S401"
    assert "123456789018" not in response.text


async def test_chukan_rejects_a_personal_number_hidden_in_another_field(chukan: httpx.AsyncClient) -> None:
    message = plain_outbound({**FUKUHON, "note": "621498320257"}, kind="chukan.fukuhon")
    response = await post(chukan, message)
    assert response.status_code == 422 and response.json()["issues"][0]["path"] == "/note"


def test_the_personal_number_check_digit() -> None:
    assert personal_number_valid("123456789018") and personal_number_valid("621498320257")
    assert not personal_number_valid("123456789012") and not personal_number_valid("12345678901")


def test_an_unknown_system_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="zei"):
        create_app("gas", validate=namespace_validator)
