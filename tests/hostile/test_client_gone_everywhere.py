"""The sibling of the intake's "a client that leaves mid-body leaves no traceback" (issue 11
item 9): every HTTP server renkei runs on adapters.server.EmbeddedServer — the simulators
(the demo's and the tests' receivers, JSON and SOAP) and the vendor kit's sender check — takes
a client that hangs up mid-body with one log line, not "Exception in ASGI application" and a
traceback (the cluster suite's killed deliverer once left two in CI's output)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from adapters.server import EmbeddedServer
from adapters.simulators.app import create_app
from adapters.simulators.soap import SoapSimulator

APPS: dict[str, tuple[Callable[[], Any], str]] = {
    "simulator": (lambda: create_app("zei"), "/messages"),
    "soap simulator": (lambda: SoapSimulator("zei", username="u", password="p"), "/soap"),
}


@pytest.mark.parametrize("name", sorted(APPS))
async def test_a_client_leaving_mid_body_leaves_no_traceback(name: str, caplog: pytest.LogCaptureFixture,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    make, path = APPS[name]
    server = EmbeddedServer(make())
    await server.start()
    caplog.set_level(logging.DEBUG)
    for logger in ("uvicorn", "uvicorn.error"):  # uvicorn's loggers do not propagate to the root
        logging.getLogger(logger).addHandler(caplog.handler)
    try:
        sock = socket.create_connection((server.host, server.port))
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: sim\r\nContent-Type: application/xml\r\n"
                     "Content-Length: 1000\r\n\r\n<ResidentChange".encode())
        await asyncio.sleep(0.1)
        sock.close()
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (await client.get("/healthz")).status_code == 200  # still serving
    finally:
        for logger in ("uvicorn", "uvicorn.error"):
            logging.getLogger(logger).removeHandler(caplog.handler)
        await server.stop()
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert "Traceback" not in text and "Exception in ASGI application" not in text, text[-2000:]
