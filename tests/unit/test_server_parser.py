"""The embedded HTTP server's request parser: httptools by default, h11 as the fallback
(RENKEI_HTTP_PARSER or `parser=`), each with the request-head timer (adapters/server.py). The
hostile-client suite (tests/hostile/test_hostile_http_clients.py) runs the intake on both."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from adapters.server import PARSERS, EmbeddedServer, parser_of
from bus.errors import ConfigError


def test_httptools_is_the_default_and_the_environment_or_the_caller_chooses() -> None:
    assert PARSERS == ("httptools", "h11")
    assert parser_of(env={}) == "httptools"
    assert parser_of(env={"RENKEI_HTTP_PARSER": " H11 "}) == "h11"
    assert parser_of("h11", env={"RENKEI_HTTP_PARSER": "httptools"}) == "h11"
    with pytest.raises(ConfigError, match=r"RENKEI_HTTP_PARSER must be one of httptools, h11, got 'llhttp'"):
        parser_of(env={"RENKEI_HTTP_PARSER": "llhttp"})


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": scope["method"].encode()})


@pytest.mark.parametrize(("parser", "protocol"), [("httptools", HttpToolsProtocol), ("h11", H11Protocol)])
@pytest.mark.parametrize("header_timeout", [None, 0.3])
async def test_each_parser_serves_and_a_slow_head_is_cut_off(
        parser: str, protocol: type, header_timeout: float | None) -> None:
    server = EmbeddedServer(_hello, parser=parser, header_timeout=header_timeout)
    await server.start()
    try:
        assert server._server is not None
        assert issubclass(server._server.config.http_protocol_class, protocol)
        async with httpx.AsyncClient(timeout=5) as client:  # two requests on one kept-alive connection
            for _ in range(2):
                response = await client.post(server.url, content=b"x")
                assert (response.status_code, response.text) == (200, "POST")
                await asyncio.sleep(0.1)
        if header_timeout is not None:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: b")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing answered
            writer.close()
    finally:
        await server.stop()
