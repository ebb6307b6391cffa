"""The HTTP intake: what a pushing system is told for each message it sends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from adapters.sources.http_intake import create_intake_app
from bus.errors import BrokerUnavailable, PublishNotConfirmed
from bus.ports import Submission
from bus.validation.issues import Issue


class FakeIntake:
    """Answers from a function and remembers every call."""

    def __init__(self, answer: Callable[[bytes], Submission]) -> None:
        self.answer = answer
        self.calls: list[dict[str, object]] = []

    async def submit(
        self, raw: bytes, *, content_type: str, source: str, kind: str | None = None
    ) -> Submission:
        self.calls.append({"raw": raw, "content_type": content_type, "source": source, "kind": kind})
        return self.answer(raw)


def accepted(raw: bytes) -> Submission:
    return Submission("accepted", message_id="m1", kind="jumin.idou")


def client_for(intake: FakeIntake, **options: int) -> httpx.AsyncClient:
    app = create_intake_app(intake, **options)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bus")


@pytest.fixture
async def intake() -> AsyncIterator[FakeIntake]:
    yield FakeIntake(accepted)


XML = {"Content-Type": "application/xml"}


async def test_an_accepted_message_is_202_with_its_message_id(intake: FakeIntake) -> None:
    async with client_for(intake) as client:
        response = await client.post(
            "/v1/messages", content=b"<x/>", headers={**XML, "X-Renkei-Source": "kiban"}
        )
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "message_id": "m1", "kind": "jumin.idou"}
    assert intake.calls == [
        {"raw": b"<x/>", "content_type": "application/xml", "source": "kiban", "kind": None}
    ]


async def test_the_kind_comes_from_the_query_or_the_header(intake: FakeIntake) -> None:
    async with client_for(intake) as client:
        await client.post(
            "/v1/messages?kind=jumin.idou", content=b"a", headers={"Content-Type": "application/avro"}
        )
        await client.post("/v1/messages", content=b"a", headers={**XML, "X-Renkei-Kind": "portal.shinsei"})
    assert [c["kind"] for c in intake.calls] == ["jumin.idou", "portal.shinsei"]
    assert intake.calls[0]["content_type"] == "application/avro"
    assert intake.calls[1]["source"] == "http"


async def test_a_duplicate_is_200() -> None:
    intake = FakeIntake(lambda raw: Submission("duplicate", message_id="m1"))
    async with client_for(intake) as client:
        response = await client.post("/v1/messages", content=b"<x/>", headers=XML)
    assert response.status_code == 200 and response.json()["status"] == "duplicate"


async def test_a_rejected_message_is_422_with_every_issue() -> None:
    issues = (
        Issue("R401", "check digit", "personal_number", value="****"),
        Issue("R300", "bad", "/a", line=3),
    )
    intake = FakeIntake(lambda raw: Submission("rejected", issues=issues))
    async with client_for(intake) as client:
        response = await client.post("/v1/messages", content=b"<x/>", headers=XML)
    assert response.status_code == 422
    assert response.json()["issues"] == [i.to_dict() for i in issues]


@pytest.mark.parametrize("error", [BrokerUnavailable("down"), PublishNotConfirmed("nack")])
async def test_an_unavailable_broker_is_503_and_never_accepted(error: Exception) -> None:
    def fail(raw: bytes) -> Submission:
        raise error

    async with client_for(FakeIntake(fail)) as client:
        response = await client.post("/v1/messages", content=b"<x/>", headers=XML)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.json()["status"] != "accepted"


def rejecting_like_the_bus(max_body: int) -> Callable[[bytes], Submission]:
    """What the intake stage answers for an oversized or unknown body: rejected (R100 / R220)."""
    def answer(raw: bytes) -> Submission:
        if len(raw) > max_body:
            return Submission("rejected", None, None, (Issue("R100", "too large"),))
        if raw == b"{}":
            return Submission("rejected", None, None, (Issue("R220", "unknown content type"),))
        return accepted(raw)
    return answer


async def test_a_body_over_the_cap_is_413_and_only_its_first_bytes_go_to_the_intake_to_be_audited() -> None:
    """The body is read up to the cap + 1 byte, never beyond; the intake rejects and audits it."""
    intake = FakeIntake(rejecting_like_the_bus(10))
    async with client_for(intake, max_body=10) as client:
        declared = await client.post("/v1/messages", content=b"x" * 11, headers=XML)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed
            for _ in range(100):
                yield b"x" * 5

        streamed = await client.post("/v1/messages", content=chunks(), headers=XML)
        exact = await client.post("/v1/messages", content=b"x" * 10, headers=XML)
    assert declared.status_code == streamed.status_code == 413
    assert declared.json()["issues"][0]["code"] == "R100"
    assert exact.status_code == 202
    assert [len(c["raw"]) for c in intake.calls] == [11, 11, 10]  # type: ignore[arg-type]


async def test_other_content_types_are_415_and_go_to_the_intake_to_be_audited() -> None:
    intake = FakeIntake(rejecting_like_the_bus(100))
    async with client_for(intake) as client:
        response = await client.post(
            "/v1/messages", content=b"{}", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 415
    assert [c["content_type"] for c in intake.calls] == ["application/json"]


async def test_a_malformed_source_claim_is_400_and_never_submitted(intake: FakeIntake) -> None:
    async with client_for(intake) as client:
        response = await client.post("/v1/messages", content=b"<x/>",
                                     headers={**XML, "X-Renkei-Source": "kiban system"})
    assert response.status_code == 400 and response.json()["issues"][0]["code"] == "A400"
    assert intake.calls == []


async def test_healthz(intake: FakeIntake) -> None:
    async with client_for(intake) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}


def test_the_intake_limits_come_from_the_settings(tmp_path: Path) -> None:
    """[intake] http_header_timeout, http_body_timeout and http_max_connections reach the HTTP intake;
    a zero is refused with where it was given."""
    from adapters.sources.http_intake import HttpIntake
    from bus.app import front_doors
    from bus.catalog import Catalog
    from bus.errors import ConfigError
    from bus.settings import Settings

    path = tmp_path / "renkei.toml"
    path.write_text("[intake]\nhttp_header_timeout = 3\nhttp_body_timeout = 7\nhttp_max_connections = 9\n",
                    encoding="utf-8")
    [door] = [d for d in front_doors(Settings.load(path, env={}), Catalog.load()) if isinstance(d, HttpIntake)]
    assert (door.header_timeout, door.body_timeout, door.max_connections) == (3, 7, 9)
    path.write_text("[intake]\nhttp_body_timeout = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="http_body_timeout"):
        Settings.load(path, env={})
