"""The client an HTTP-based sink (HTTP, SOAP) opens on first use and closes with itself.

It is aiohttp's (`adapters.transports.aioclient`, answering as httpx does, at a fifth of its CPU
per request), or httpx's own when the destination says `http_client = "httpx"` (or, for every
destination that does not say, the environment's RENKEI_HTTP_CLIENT=httpx). A test may pass an
httpx client of its own (`httpx.MockTransport`).

Every such client verifies TLS with one shared context (`shared_tls`): httpx builds a context
per client (the CA bundle loaded anew: ~25 ms of CPU each), which the demo paid 15 times on its
first deliveries, inside its clock (issue 10)."""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from typing import Literal, Protocol, Self

import httpx

from bus.errors import ConfigError

__all__ = ["CLIENTS", "HttpClient", "OwnedClient", "shared_tls"]

#: `http_client` in a destination's table: the library its requests go through
CLIENTS = ("aiohttp", "httpx")


class HttpClient(Protocol):
    """What a sink asks of its client: httpx.AsyncClient's `post`, or aioclient.AiohttpClient's."""

    async def post(self, url: str, *, content: bytes, headers: Mapping[str, str],
                   timeout: float) -> httpx.Response: ...  # noqa: ASYNC109 (httpx's signature)

    async def aclose(self) -> None: ...


class OwnedClient:
    """Mixin: `_http()` is the sink's client (a test may pass its own: then it is not closed)."""

    timeout: float
    http_client: Literal["aiohttp", "httpx"]
    _client: HttpClient | None
    _owns_client: bool

    def _use_client(self, client: httpx.AsyncClient | None, http_client: str | None) -> None:
        """`http_client` None: RENKEI_HTTP_CLIENT, else aiohttp."""
        if http_client is None:
            http_client = os.environ.get("RENKEI_HTTP_CLIENT") or "aiohttp"
        if http_client not in CLIENTS:
            raise ConfigError(f"http_client must be one of {', '.join(CLIENTS)}, got {http_client!r}")
        self.http_client = "httpx" if http_client == "httpx" else "aiohttp"
        self._client = client
        self._owns_client = client is None

    def prepare(self) -> None:
        """Make the client now, at the deliverer's start (`bus.ports.prepare_sink`): its library
        imported and the TLS context loaded, no connection opened. Made at the first delivery,
        the import of aiohttp held the bus's event loop 0.3 s while changes arrived: at 200/s the
        first 22 took 125 ms each (bench/README.md, stop 28)."""
        self._http()

    def _http(self) -> HttpClient:
        if self._client is None:
            if self.http_client == "aiohttp":
                from adapters.transports.aioclient import AiohttpClient

                self._client = AiohttpClient(timeout=self.timeout, verify=shared_tls())
            else:
                self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, verify=shared_tls())
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@functools.cache
def shared_tls() -> ssl.SSLContext:
    """httpx's default verifying context (its CA bundle, SSL_CERT_FILE/SSL_CERT_DIR honoured), made once."""
    return httpx.create_ssl_context()
