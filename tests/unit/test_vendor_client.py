"""bus.client's answers and retries, with the HTTP intake faked by httpx.MockTransport (the
real intake and RabbitMQ: tests/integration/test_vendor_client_bus.py)."""

from __future__ import annotations

import httpx
import pytest

from bus.catalog import Catalog
from bus.client import Answer, HttpClient, PublishRefused, PublishUnavailable, RetryOptions
from bus.synthetic.samples import sample_records

FAST = RetryOptions(attempts=3, first_wait=0.001, max_wait=0.01)


@pytest.fixture(scope="module")
def change() -> bytes:
    catalog = Catalog.load()
    record = next(iter(sample_records("jumin.idou", catalog, seed=3, n=1)))
    return catalog.get("jumin.idou").to_xml(record)


def client_of(*responses: httpx.Response, validate_first: bool = False) -> tuple[HttpClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return HttpClient("http://bus.test", token="t0ken", source="kiban", retry=FAST, client=http,
                      validate_first=validate_first), seen


def test_a_busy_intake_is_retried_and_the_retry_is_counted(change: bytes) -> None:
    client, seen = client_of(httpx.Response(503, headers={"Retry-After": "5"}),
                             httpx.Response(202, json={"status": "accepted", "message_id": "m1", "kind": "jumin.idou"}))
    answer = client.publish(change)
    assert answer == Answer("accepted", "m1", "jumin.idou", (), True, 2)
    assert [r.url.path for r in seen] == ["/v1/messages", "/v1/messages"]
    assert seen[0].headers["authorization"] == "Bearer t0ken"
    assert seen[0].headers["x-renkei-source"] == "kiban"


def test_a_refused_token_raises_at_once_without_retrying(change: bytes) -> None:
    client, seen = client_of(httpx.Response(401, json={"status": "unauthorized", "issues": [
        {"code": "T401", "message": "unknown token"}]}))
    with pytest.raises(PublishRefused, match="HTTP 401: unknown token"):
        client.publish(change)
    assert len(seen) == 1


def test_an_intake_that_stays_busy_ends_in_publish_unavailable(change: bytes) -> None:
    client, seen = client_of(*(httpx.Response(503) for _ in range(3)))
    with pytest.raises(PublishUnavailable, match="HTTP 503"):
        client.publish(change)
    assert len(seen) == 3


def test_the_bus_rejection_carries_its_issues(change: bytes) -> None:
    client, _ = client_of(httpx.Response(422, json={"status": "rejected", "issues": [
        {"code": "R402", "message": "check digit", "path": "/municipality_code", "line": 3, "column": 5}]}))
    answer = client.publish(change)
    assert (answer.status, answer.ok, answer.sent) == ("rejected", False, True)
    assert [(i.code, i.path, i.line) for i in answer.issues] == [("R402", "/municipality_code", 3)]


def test_an_invalid_change_is_answered_locally_and_never_sent() -> None:
    client, seen = client_of(validate_first=True)
    answer = client.publish(b"<ResidentChange xmlns='urn:renkei:schema:jumin.idou:1'><broken/></ResidentChange>")
    assert (answer.status, answer.sent, answer.attempts) == ("rejected", False, 0)
    assert answer.issues and seen == []


def test_a_record_without_a_kind_is_a_usage_error() -> None:
    client, _ = client_of()
    with pytest.raises(ValueError, match="kind="):
        client.publish({"municipality_code": "131016"})
