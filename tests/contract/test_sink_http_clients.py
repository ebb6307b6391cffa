"""The HTTP sinks' aiohttp client (adapters/transports/aioclient.py) answers as httpx's does.

Every case runs the sink against a real loopback server (aiohttp's TestServer), once on
aiohttp (the default) and once on httpx (`http_client = "httpx"`, the fallback). A status, a
timeout, a redirect, a compressed answer, a cut connection or a TLS server no trusted CA signed
must give the same receipt or the same renkei error on both, since `map_http_errors` reads both
as httpx's."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sink_contract_support import plain_outbound

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from tenants_support import issue_server_cert, make_ca

from adapters.registry import build_sink
from adapters.transports.aioclient import AiohttpClient, proxy_for
from adapters.transports.errors import HttpPermanentError, HttpTransientError
from adapters.transports.http import HttpSink
from bus.errors import ConfigError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENTS = ["aiohttp", "httpx"]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start a loopback server answering POST /m with `handler`; its URL."""
    servers: list[TestServer] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/m", handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/m"))

    yield start
    for server in servers:
        await server.close()


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_2xx_is_a_receipt_with_the_receivers_reference_and_the_headers_sent(
        serve: Callable[[Handler], Awaitable[str]], client: str) -> None:
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        await request.read()
        return web.json_response({"status": "applied", "reference": "R-1"})

    message = plain_outbound()
    async with HttpSink(await serve(handler), http_client=client) as sink:
        receipt = await sink.deliver(message)
    assert (receipt.status, receipt.reference) == ("applied", "R-1")
    assert seen[0].headers["Content-Type"] == "application/xml"
    assert seen[0].headers["Idempotency-Key"] == message.envelope.idempotency_key


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_gzip_answer_is_read_decoded(serve: Callable[[Handler], Awaitable[str]], client: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b'{"status": "duplicate"}'), content_type="application/json",
                            headers={"Content-Encoding": "gzip"})

    async with HttpSink(await serve(handler), http_client=client) as sink:
        assert (await sink.deliver(plain_outbound())).status == "duplicate"


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_503_with_retry_after_is_transient_and_a_422_permanent_with_its_codes(
        serve: Callable[[Handler], Awaitable[str]], client: str) -> None:
    answers = [web.Response(status=503, headers={"Retry-After": "7"}),
               web.json_response({"issues": [{"code": "R300", "path": "x"}]}, status=422)]

    async def handler(request: web.Request) -> web.Response:
        return answers.pop(0)

    async with HttpSink(await serve(handler), http_client=client) as sink:
        with pytest.raises(HttpTransientError) as transient:
            await sink.deliver(plain_outbound())
        with pytest.raises(HttpPermanentError) as permanent:
            await sink.deliver(plain_outbound())
    assert (transient.value.status, transient.value.retry_after) == (503, 7.0)
    assert (permanent.value.status, permanent.value.codes) == (422, ("R300",))


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_redirect_is_not_followed(serve: Callable[[Handler], Awaitable[str]], client: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://127.0.0.1:9/elsewhere"})

    async with HttpSink(await serve(handler), http_client=client) as sink:
        with pytest.raises(HttpPermanentError, match="HTTP 302"):
            await sink.deliver(plain_outbound())


@pytest.mark.parametrize("client", CLIENTS)
async def test_no_answer_in_time_is_transient(serve: Callable[[Handler], Awaitable[str]], client: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    async with HttpSink(await serve(handler), timeout=0.3, http_client=client) as sink:
        with pytest.raises(HttpTransientError, match="timed out"):
            await sink.deliver(plain_outbound())


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_connection_cut_before_the_answer_is_transient(
        serve: Callable[[Handler], Awaitable[str]], client: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()  # gone without a word
        await asyncio.sleep(0.1)
        return web.Response()

    async with HttpSink(await serve(handler), http_client=client) as sink:
        with pytest.raises(HttpTransientError, match="connection failed"):
            await sink.deliver(plain_outbound())


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_closed_port_is_transient(client: str) -> None:
    async with HttpSink("http://127.0.0.1:9/none", timeout=0.5, http_client=client) as sink:
        with pytest.raises(HttpTransientError, match="connection failed"):
            await sink.deliver(plain_outbound())


async def test_the_client_is_chosen_per_destination_or_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with HttpSink("http://127.0.0.1:9/none") as sink:
        assert isinstance(sink._http(), AiohttpClient)
    built = build_sink("http", {"url": "http://127.0.0.1:9/none", "http_client": "httpx", "destination": "zei"})
    assert built.http_client == "httpx"  # type: ignore[attr-defined]
    monkeypatch.setenv("RENKEI_HTTP_CLIENT", "httpx")
    assert HttpSink("http://127.0.0.1:9/none").http_client == "httpx"
    assert HttpSink("http://127.0.0.1:9/none", http_client="aiohttp").http_client == "aiohttp"  # the table wins
    with pytest.raises(ConfigError, match="http_client must be one of aiohttp, httpx, got 'requests'"):
        build_sink("http", {"url": "http://127.0.0.1:9/none", "http_client": "requests", "destination": "zei"})


def test_the_environments_proxy_is_found_once_per_url_as_httpx_finds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_for("http://kokuho.example/m") is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "zei.example")
    assert proxy_for("http://kokuho.example/m") == "http://proxy.example:3128"
    assert proxy_for("http://zei.example/m") is None  # NO_PROXY
    assert proxy_for("https://kokuho.example/m") is None  # HTTPS_PROXY unset


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """A loopback HTTPS server whose certificate a throwaway CA signed: (its URL, the CA's PEM)."""
    ca_pem, ca_key, ca_cert = make_ca(tmp_path)
    cert, key = issue_server_cert(tmp_path, ca_key, ca_cert)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"status": "applied"})

    app = web.Application()
    app.router.add_post("/m", handler)
    server = TestServer(app, host="127.0.0.1", scheme="https")
    await server.start_server(ssl=context)
    try:
        yield str(server.make_url("/m")), ca_pem
    finally:
        await server.close()


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_server_the_ca_bundle_does_not_vouch_for_is_refused(tls_server: tuple[str, Path],
                                                                     client: str) -> None:
    url, _ = tls_server
    async with HttpSink(url, http_client=client) as sink:
        with pytest.raises(HttpTransientError, match="connection failed"):
            await sink.deliver(plain_outbound())


async def test_a_server_the_trusted_ca_signed_is_taken_over_tls(tls_server: tuple[str, Path]) -> None:
    url, ca_pem = tls_server
    client = AiohttpClient(timeout=5, verify=ssl.create_default_context(cafile=str(ca_pem)))
    try:
        answer = await client.post(url, content=b"{}", headers={"Content-Type": "application/json"})
    finally:
        await client.aclose()
    assert answer.status_code == 200 and answer.json() == {"status": "applied"}
