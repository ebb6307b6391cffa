"""The HTTP sink: what it sends, and how every answer maps to a Receipt or an error."""

from __future__ import annotations

import json
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import plain_outbound

from adapters.transports.errors import HttpPermanentError, HttpTransientError
from adapters.transports.http import HttpSink
from bus.errors import ConfigError, PermanentError, TransientError

URL = "http://zei.test/renkei/messages"


def sink_for(handler: Callable[[httpx.Request], httpx.Response], **options: object) -> HttpSink:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpSink(URL, client=client, **options)  # type: ignore[arg-type]


async def test_xml_is_posted_with_the_idempotency_key_and_envelope_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "applied", "reference": "Z-1"})

    message = plain_outbound()
    receipt = await sink_for(handler).deliver(message)
    request = seen[0]
    assert request.method == "POST" and str(request.url) == URL
    assert request.headers["content-type"] == "application/xml"
    assert request.content == message.xml
    env = message.envelope
    assert request.headers["idempotency-key"] == env.idempotency_key
    assert request.headers["x-renkei-message-id"] == env.message_id
    assert request.headers["x-renkei-kind"] == "zei.jumin"
    assert request.headers["x-renkei-municipality"] == "131016"
    assert (receipt.status, receipt.reference, receipt.destination) == ("applied", "Z-1", "zei")
    assert receipt.idempotency_key == env.idempotency_key


async def test_no_personal_data_goes_into_headers_or_the_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    message = plain_outbound()
    await sink_for(handler).deliver(message)
    exposed = str(seen[0].url) + " ".join(f"{k}:{v}" for k, v in seen[0].headers.items())
    for value in ("髙橋", "一郎", "1000001", "1980-01-02", "千代田"):
        assert value not in exposed


async def test_json_body_carries_the_record_with_iso_dates() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    await sink_for(handler, body="json").deliver(plain_outbound())
    assert seen[0].headers["content-type"] == "application/json"
    body = json.loads(seen[0].content)
    assert body["birth_date"] == "1980-01-02"
    assert body["change"]["effective_date"] == "2025-04-01"
    assert body["name"]["family_name"] == "髙橋"


@pytest.mark.parametrize(
    ("response", "status"),
    [
        (httpx.Response(200), "applied"),
        (httpx.Response(201, json={"id": 1}), "applied"),
        (httpx.Response(204), "applied"),
        (httpx.Response(200, json={"status": "duplicate"}), "duplicate"),
        (httpx.Response(200, headers={"Idempotency-Replayed": "true"}), "duplicate"),
        (httpx.Response(200, text="duplicate"), "applied"),  # not JSON: the body is not read
    ],
)
async def test_a_2xx_is_a_receipt_applied_or_duplicate(response: httpx.Response, status: str) -> None:
    receipt = await sink_for(lambda _: response).deliver(plain_outbound())
    assert receipt.status == status


@pytest.mark.parametrize("code", [408, 409, 425, 429, 500, 502, 503, 504, 599])
async def test_statuses_worth_retrying_are_transient(code: int) -> None:
    sink = sink_for(lambda _: httpx.Response(code, headers={"Retry-After": "7"}))
    with pytest.raises(HttpTransientError) as caught:
        await sink.deliver(plain_outbound())
    assert caught.value.status == code and caught.value.retry_after == 7.0
    assert f"HTTP {code}" in str(caught.value)


@pytest.mark.parametrize("code", [301, 400, 401, 403, 404, 405, 410, 413, 415, 422])
async def test_other_statuses_are_permanent(code: int) -> None:
    with pytest.raises(HttpPermanentError) as caught:
        await sink_for(lambda _: httpx.Response(code)).deliver(plain_outbound())
    assert caught.value.status == code
    assert not isinstance(caught.value, TransientError)


async def test_a_permanent_error_names_issue_codes_but_never_the_body() -> None:
    body = {"status": "rejected", "issues": [{"code": "R401", "message": "bad 123456789018 髙橋"}]}
    with pytest.raises(PermanentError) as caught:
        await sink_for(lambda _: httpx.Response(422, json=body)).deliver(plain_outbound())
    text = str(caught.value)
    assert "R401" in text and "422" in text
    assert "123456789018" not in text and "髙橋" not in text


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.ReadTimeout("slow"),
        httpx.WriteTimeout("slow"),
        httpx.PoolTimeout("busy"),
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("cut"),
    ],
)
async def test_timeouts_and_connection_failures_are_transient(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(HttpTransientError) as caught:
        await sink_for(handler).deliver(plain_outbound())
    assert caught.value.status is None


async def test_an_unsupported_scheme_at_request_time_is_permanent() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.UnsupportedProtocol("ftp")

    with pytest.raises(HttpPermanentError):
        await sink_for(handler).deliver(plain_outbound())


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("ftp://zei.test/x", {}),
        ("http://user:pw@zei.test/x", {}),
        ("http://zei.test/x?token=1", {}),
        (URL, {"body": "yaml"}),
        (URL, {"timeout": 0}),
        (URL, {"headers": {"Idempotency-Key": "fixed"}}),
    ],
)
def test_misconfiguration_is_a_config_error(url: str, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        HttpSink(url, **options)  # type: ignore[arg-type]


async def test_configured_headers_are_sent_beside_the_renkei_ones() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    await sink_for(handler, headers={"Authorization": "Bearer t"}).deliver(plain_outbound())
    assert seen[0].headers["authorization"] == "Bearer t"
    assert "idempotency-key" in seen[0].headers


async def test_a_sink_without_a_client_opens_and_closes_its_own() -> None:
    async with HttpSink("http://127.0.0.1:9/none", timeout=0.5) as sink:
        assert sink.name == "127.0.0.1:9"
        with pytest.raises(HttpTransientError, match="connection failed"):
            await sink.deliver(plain_outbound())


def test_every_sink_client_verifies_tls_with_one_shared_context() -> None:
    from adapters.transports.httpclient import shared_tls

    context = shared_tls()
    assert context is shared_tls()  # made once: httpx would load its CA bundle per client (~25 ms each)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
