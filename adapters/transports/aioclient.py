"""The HTTP sinks' client on aiohttp: the `post` of httpx's AsyncClient at a fifth of its CPU.

Measured (bench/README.md, "Issue 10, stop 23"): one process POSTing a 3-item batch body to a
loopback server, 8 at a time, 4,000 requests, alternated ×2: httpx 915 and 1,043 µs of CPU
per request; aiohttp 188 and 226 µs. In `renkei run` at 200 changes/s the httpx client was
a fifth of the bus process's samples.

The sinks' code stays httpx's. The answer is an `httpx.Response` (status, headers, body and the
request), and a failure is raised as httpx's exception of the same kind:
- a timeout → `httpx.TimeoutException`;
- no connection or a cut one → `httpx.ConnectError` or `httpx.ReadError`;
- a URL aiohttp cannot use → `httpx.InvalidURL`.

So `adapters.transports.errors.map_http_errors`, `receipt_status` and the batch answers read it
as before, and the error mapping stays in one place.

Like the httpx client it replaces, it follows no redirect, it verifies TLS with the shared
context (`httpclient.shared_tls`), and it honours the proxy variables of the environment
(HTTP_PROXY, HTTPS_PROXY, NO_PROXY …), looked up once per URL: aiohttp's own `trust_env` looks
them up, and reads ~/.netrc, on every request, which cost ~680 µs of CPU a request here, more
than the rest of the request. Its timeout applies to each phase (connect, then each read), as
httpx's does. It opens its session on first use, inside the running loop.

A destination chooses its client: `http_client = "httpx"` in its table goes back to httpx
(`httpclient.OwnedClient`). A test that passes its own `client=` gets that one.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp
import httpx

__all__ = ["AiohttpClient", "proxy_for"]


class AiohttpClient:
    """`post(url, content=, headers=, timeout=)` → `httpx.Response`; `aclose()`."""

    def __init__(self, *, timeout: float, verify: ssl.SSLContext) -> None:
        self.timeout = timeout
        self._verify = verify
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        #: per URL: the request a response and an error name, and the environment's proxy for it
        self._urls: dict[str, tuple[httpx.Request, str | None]] = {}

    async def post(self, url: str, *, content: bytes, headers: Mapping[str, str],
                   timeout: float | None = None) -> httpx.Response:  # noqa: ASYNC109 (httpx's signature)
        known = self._urls.get(url)
        if known is None:
            known = self._urls[url] = (httpx.Request("POST", url), proxy_for(url))
        request, proxy = known
        session = self._session
        if session is None:
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._verify), auto_decompress=False, trust_env=False)
        try:
            async with session.post(url, data=content, headers=headers, allow_redirects=False,
                                    timeout=self._timeout(timeout), proxy=proxy) as answer:
                body = await answer.read()  # as sent: httpx decodes it by its Content-Encoding, as its own client
                return httpx.Response(answer.status, headers=answer.raw_headers, content=body, request=request)
        except TimeoutError as exc:
            raise httpx.ReadTimeout("timed out", request=request) from exc
        except aiohttp.InvalidURL as exc:
            raise httpx.InvalidURL(f"invalid URL: {type(exc).__name__}") from exc
        except (aiohttp.ClientConnectorError, aiohttp.ClientSSLError) as exc:
            raise httpx.ConnectError(type(exc).__name__, request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:  # cut, reset, a broken answer
            raise httpx.ReadError(type(exc).__name__, request=request) from exc

    def _timeout(self, seconds: float | None) -> aiohttp.ClientTimeout:
        seconds = self.timeout if seconds is None else seconds
        made = self._timeouts.get(seconds)
        if made is None:
            made = self._timeouts[seconds] = aiohttp.ClientTimeout(total=None, connect=seconds,
                                                                   sock_connect=seconds, sock_read=seconds)
        return made

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
            await asyncio.sleep(0)  # aiohttp: let the transports close before the loop may end


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY; none for a
    host NO_PROXY lists), as httpx's client finds it."""
    parts = urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all") or None
