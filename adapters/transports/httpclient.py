"""The httpx client an HTTP-based sink (HTTP, SOAP) opens on first use and closes with itself.

Every such client verifies TLS with one shared context (`shared_tls`): httpx builds a context
per client (the CA bundle loaded anew: ~25 ms of CPU each), which the demo paid 15 times on its
first deliveries, inside its clock (issue 10)."""

from __future__ import annotations

import functools
import ssl
from typing import Self

import httpx

__all__ = ["OwnedClient", "shared_tls"]


class OwnedClient:
    """Mixin: `_http()` is the sink's client (a test may pass its own: then it is not closed)."""

    timeout: float
    _client: httpx.AsyncClient | None
    _owns_client: bool

    def _use_client(self, client: httpx.AsyncClient | None) -> None:
        self._client = client
        self._owns_client = client is None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
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
