"""bus.client's answers and retries, with the HTTP intake faked by httpx.MockTransport (the
real intake and RabbitMQ: tests/integration/test_vendor_client_bus.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bus.catalog import Catalog
from bus.client import AmqpClient, Answer, HttpClient, PublishRefused, PublishUnavailable, RetryOptions
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


def test_a_windowed_batch_overlaps_residents_but_keeps_each_residents_order() -> None:
    import re
    import threading
    import time

    catalog = Catalog.load()
    records = list(sample_records("jumin.idou", catalog, seed=5, n=9))
    one = records[0]
    for i, record in enumerate(records[:4]):  # four changes of one resident, 履歴番号 1..4
        record.update(municipality_code=one["municipality_code"], address_number=one["address_number"],
                      history_number=i + 1)
    arrived: list[tuple[str, str]] = []
    busy, most = 0, 0
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal busy, most
        body = request.content.decode()
        who = re.search(r"<address_number>(\d+)</address_number>", body)
        seq = re.search(r"<history_number>(\d+)</history_number>", body)
        assert who and seq
        with lock:
            busy += 1
            most = max(most, busy)
        time.sleep(0.05)
        with lock:
            busy -= 1
            arrived.append((who.group(1), seq.group(1)))
        return httpx.Response(202, json={"status": "accepted", "message_id": f"m{seq.group(1)}"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = HttpClient("http://bus.test", catalog=catalog, retry=FAST, client=http, window=4)
    seen: list[int] = []
    with client:
        result = client.publish_batch(records, kind="jumin.idou", progress=lambda p: seen.append(p.done))
    assert result.counts() == {"accepted": 9} and seen == list(range(1, 10))
    assert [s for who, s in arrived if who == one["address_number"]] == ["1", "2", "3", "4"]
    assert most > 1  # other residents went alongside


class FlakyBroker(AmqpClient):
    """An in-memory stand-in for the broker and the bus's AMQP intake: every published change is
    answered "accepted" the first time and "duplicate" after; the connection breaks once, while
    `break_after` changes are in flight."""

    def __init__(self, catalog: Catalog, break_after: int) -> None:
        super().__init__("amqp://vendor@broker.test/renkei-131016", catalog=catalog, window=4, retry=FAST)
        self.break_after = break_after
        self.published: list[bytes] = []
        self.seen: set[bytes] = set()
        self.pending: dict[str, bytes] = {}
        self.resets = 0

    def _publish(self, raw: bytes, content_type: str, kind: str | None) -> str:
        correlation = f"c{len(self.published)}"
        self.published.append(raw)
        self.pending[correlation] = raw
        return correlation

    def _wait(self, done: Any) -> None:
        if self.break_after and len(self.pending) >= self.break_after:
            self.break_after = 0
            raise PublishUnavailable("AMQP: ConnectionResetError")
        for correlation, raw in list(self.pending.items()):
            status = "duplicate" if raw in self.seen else "accepted"
            self.seen.add(raw)
            self._answers[correlation] = {"status": status, "message_id": str(hash(raw))}
            del self.pending[correlation]

    def _reset(self) -> None:
        self.resets += 1
        self.pending.clear()  # the broken connection's answers are lost
        self._answers.clear()


def test_a_kombu_batch_resends_what_was_in_flight_when_the_connection_broke() -> None:
    catalog = Catalog.load()
    changes = [catalog.get("jumin.idou").to_xml(r) for r in sample_records("jumin.idou", catalog, seed=6, n=10)]
    client = FlakyBroker(catalog, break_after=4)
    result = client.publish_batch(changes)
    assert result.counts() == {"accepted": 10}
    assert client.resets == 1
    assert len(client.published) == 14  # the four in flight went again, one at a time
    assert changes[:4] == client.published[4:8]
    assert {a.message_id for a in result.answers} == {str(hash(c)) for c in changes}
