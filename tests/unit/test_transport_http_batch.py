"""The HTTP sink's batch form (adapters.transports.httpbatch): what one request carries, how
each item's receipt maps to a Receipt or an error of its own, a whole-request failure, and
concurrent deliveries joined into one request."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import plain_outbound

from adapters.transports.errors import HttpPermanentError, HttpTransientError
from adapters.transports.http import HttpSink
from bus.errors import ConfigError
from bus.ports import Receipt, batch_size_of

URL = "http://zei.test/renkei/messages"


def sink_for(handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> HttpSink:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpSink(URL, client=client, batch_size=options.pop("batch_size", 10), **options)


def applying(seen: list[dict[str, Any]], refuse: str | None = None, retry: str | None = None
             ) -> Callable[[httpx.Request], httpx.Response]:
    """A receiver that answers each item applied, but `refuse` rejected and `retry` retry."""
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append({"headers": request.headers, "items": body["items"]})
        answers = []
        for item in body["items"]:
            key = item["idempotency_key"]
            if key == refuse:
                answers.append({"idempotency_key": key, "status": "rejected", "issues": [{"code": "R300"}]})
            elif key == retry:
                answers.append({"idempotency_key": key, "status": "retry", "retry_after": 2})
            else:
                answers.append({"idempotency_key": key, "status": "applied", "reference": f"Z-{key[:4]}"})
        return httpx.Response(200, json={"items": answers[::-1]})  # matched by key, not by place
    return handler


async def test_one_request_carries_every_item_with_its_own_key_and_headers_as_fields() -> None:
    seen: list[dict[str, Any]] = []
    messages = [plain_outbound() for _ in range(3)]
    results = await sink_for(applying(seen)).deliver_many(messages)
    [request] = seen
    assert request["headers"]["content-type"] == "application/vnd.renkei.batch+json"
    assert request["headers"]["x-renkei-batch-size"] == "3"
    assert [i["idempotency_key"] for i in request["items"]] == [m.envelope.idempotency_key for m in messages]
    first = request["items"][0]
    assert (first["subject"], first["sequence"], first["content_type"]) == (
        messages[0].envelope.subject, messages[0].envelope.sequence, "application/xml")
    assert first["body"] == messages[0].xml.decode()
    assert all(isinstance(r, Receipt) and r.status == "applied" for r in results)
    assert [r.idempotency_key for r in results if isinstance(r, Receipt)] == [m.envelope.idempotency_key
                                                                             for m in messages]


async def test_json_items_carry_the_record_as_an_object_with_iso_dates() -> None:
    seen: list[dict[str, Any]] = []
    await sink_for(applying(seen), body="json").deliver_many([plain_outbound()])
    item = seen[0]["items"][0]
    assert item["content_type"] == "application/json"
    assert item["body"]["birth_date"] == "1980-01-02" and item["body"]["name"]["family_name"] == "髙橋"


async def test_a_refused_item_is_a_permanent_error_of_its_own_and_the_others_are_receipts() -> None:
    messages = [plain_outbound() for _ in range(3)]
    refused = messages[1].envelope.idempotency_key
    results = await sink_for(applying([], refuse=refused)).deliver_many(messages)
    assert isinstance(results[0], Receipt) and isinstance(results[2], Receipt)
    assert isinstance(results[1], HttpPermanentError) and results[1].codes == ("R300",)
    assert "髙橋" not in str(results[1])


async def test_an_item_to_be_retried_is_a_transient_error_with_its_retry_after() -> None:
    messages = [plain_outbound() for _ in range(2)]
    results = await sink_for(applying([], retry=messages[0].envelope.idempotency_key)).deliver_many(messages)
    assert isinstance(results[0], HttpTransientError) and results[0].retry_after == 2.0
    assert isinstance(results[1], Receipt)


async def test_an_item_missing_from_the_answer_or_an_answer_not_a_batch_is_retried() -> None:
    messages = [plain_outbound() for _ in range(2)]
    only_first = {"items": [{"idempotency_key": messages[0].envelope.idempotency_key, "status": "duplicate"}]}
    results = await sink_for(lambda r: httpx.Response(200, json=only_first)).deliver_many(messages)
    assert isinstance(results[0], Receipt) and results[0].status == "duplicate"
    assert isinstance(results[1], HttpTransientError)
    garbled = await sink_for(lambda r: httpx.Response(200, text="OK")).deliver_many(messages)
    assert all(isinstance(r, HttpTransientError) for r in garbled)


@pytest.mark.parametrize(("status", "error"), [(503, HttpTransientError), (429, HttpTransientError),
                                               (400, HttpPermanentError)])
async def test_a_whole_request_failure_is_raised_for_the_batch(status: int, error: type[Exception]) -> None:
    sink = sink_for(lambda r: httpx.Response(status, headers={"Retry-After": "3"}))
    with pytest.raises(error) as caught:
        await sink.deliver_many([plain_outbound(), plain_outbound()])
    if isinstance(caught.value, HttpTransientError):
        assert caught.value.retry_after == 3.0


async def test_more_messages_than_the_batch_size_go_in_several_requests() -> None:
    seen: list[dict[str, Any]] = []
    results = await sink_for(applying(seen), batch_size=2).deliver_many([plain_outbound() for _ in range(5)])
    assert [len(r["items"]) for r in seen] == [2, 2, 1] and len(results) == 5


async def test_concurrent_deliveries_are_joined_into_one_request_each_caller_getting_its_own_answer() -> None:
    seen: list[dict[str, Any]] = []
    messages = [plain_outbound() for _ in range(4)]
    sink = sink_for(applying(seen, refuse=messages[2].envelope.idempotency_key), batch_linger_ms=50)
    results = await asyncio.gather(*(sink.deliver(m) for m in messages), return_exceptions=True)
    assert len(seen) == 1 and len(seen[0]["items"]) == 4
    assert isinstance(results[2], HttpPermanentError)
    assert [r.idempotency_key for r in results if isinstance(r, Receipt)] == [
        m.envelope.idempotency_key for i, m in enumerate(messages) if i != 2]
    await sink.aclose()


async def test_a_whole_request_failure_fails_every_joined_delivery() -> None:
    sink = sink_for(lambda r: httpx.Response(503), batch_linger_ms=20)
    results = await asyncio.gather(*(sink.deliver(plain_outbound()) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, HttpTransientError) and r.status == 503 for r in results)
    await sink.aclose()


def test_a_sink_declares_batches_only_when_configured() -> None:
    assert batch_size_of(HttpSink(URL)) == 1
    assert batch_size_of(HttpSink(URL, batch_size=50)) == 50


@pytest.mark.parametrize("options", [{"batch_size": 0}, {"batch_size": 1001}, {"batch_size": "10"},
                                     {"batch_size": True}, {"batch_linger_ms": -1}, {"batch_linger_ms": 60_000}])
def test_a_bad_batch_setting_is_a_config_error_naming_it(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(options))):
        HttpSink(URL, **options)


def test_dumps_json_gives_the_bytes_json_dumps_gave() -> None:
    """The batch body and a JSON record are orjson's now: byte for byte what
    json.dumps(ensure_ascii=False, default=json_default, compact) wrote, for what records hold."""
    from datetime import UTC, date, datetime, timedelta, timezone
    from decimal import Decimal

    from adapters.transports.httpbatch import dumps_json, json_default

    jst = timezone(timedelta(hours=9))
    values: list[Any] = [
        {"shimei": "山田 太郎", "kana": "ヤマダ　タロウ", "gaiji": "𠮷野家", "empty": "", "none": None},
        {"born": date(1960, 2, 29), "at": datetime(2025, 4, 1, 9, 30, 0, 123000, tzinfo=jst),
         "naive": datetime(2025, 4, 1, 0, 0, 0, 7), "utc": datetime(2025, 4, 1, tzinfo=UTC)},
        {"amount": Decimal("12345.670"), "raw": b"\x00\xff", "flag": True, "n": -(2 ** 62), "f": 0.1},
        {"items": [{"body": "<?xml version='1.0'?>\n<a>&amp;\t\"q\" \\ \u2028 \x7f</a>", "sequence": 3}]},
        {"nested": [[1, [2, {"k": [date(2000, 1, 1)]}]]], "ключ": "значение"},
    ]
    for value in values:
        expected = json.dumps(value, ensure_ascii=False, default=json_default, separators=(",", ":")).encode()
        assert dumps_json(value) == expected


def test_a_record_json_cannot_carry_still_raises() -> None:
    from adapters.transports.httpbatch import dumps_json

    with pytest.raises(TypeError, match="object"):
        dumps_json({"x": object()})
