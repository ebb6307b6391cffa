"""HTTP(S) sink: POST one message to a receiving system.

Request::

    POST <url>
    Content-Type: application/xml            (body="xml": the Outbound's validated XML)
               or application/json           (body="json": the record, dates as ISO 8601)
    Idempotency-Key: <envelope.idempotency_key>   (message_id + destination)
    X-Renkei-Message-Id, X-Renkei-Kind, X-Renkei-Schema-Version, X-Renkei-Municipality,
    X-Renkei-Subject (the HMAC pseudonym, never the 宛名番号), X-Renkei-Sequence (履歴番号)

Personal data travels only in the body: never in headers or the URL.

Outcome (mapped in one place, adapters.transports.errors.map_http_errors): a 2xx is a
Receipt — "duplicate" when the receiver says so (``{"status": "duplicate"}`` or an
``Idempotency-Replayed: true`` header), else "applied"; 408/409/425/429/5xx, timeouts and
connection failures raise TransientError; other statuses raise PermanentError.

Batches (``batch_size = N`` > 1 in the destination's table, adapters.transports.httpbatch):
`deliver_many` sends up to N messages in one request and answers item by item, and
`deliver` joins the messages delivered at the same time (other residents' changes, up to N,
waiting at most ``batch_linger_ms`` for more) into one request (bus.groupcommit), each caller
getting its own item's receipt or error. The default, 1, is one request per message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from adapters.transports.errors import map_http_errors, receipt_reference, receipt_status
from adapters.transports.httpbatch import (
    BATCH_CONTENT_TYPE,
    BATCH_SIZE_HEADER,
    dumps_json,
    encode_batch,
    item_results,
)
from adapters.transports.httpclient import OwnedClient
from bus.errors import ConfigError
from bus.groupcommit import Failed, GroupCommit
from bus.ports import ItemResult, Outbound, Receipt

__all__ = ["HttpSink", "envelope_headers", "record_to_json"]

#: headers the sink sets itself; configured headers may not override them
RESERVED_HEADERS = frozenset(
    {
        "idempotency-key",
        "content-type",
        "x-renkei-message-id",
        "x-renkei-kind",
        "x-renkei-schema-version",
        "x-renkei-municipality",
        "x-renkei-subject",
        "x-renkei-sequence",
    }
)


class HttpSink(OwnedClient):
    """Deliver messages by HTTP POST; one instance per destination.

    `client` lets tests pass an ``httpx.AsyncClient(transport=httpx.MockTransport(...))``;
    without it the sink opens its own client on first use (close it with `aclose`): aiohttp's,
    or httpx's with `http_client = "httpx"` (adapters.transports.httpclient).
    """

    def __init__(
        self,
        url: str,
        *,
        body: Literal["xml", "json"] = "xml",
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
        name: str | None = None,
        batch_size: int = 1,
        batch_linger_ms: float = 0.0,
        http_client: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"http sink: url must be http(s)://host/..., got {url!r}")
        if parts.query or parts.username or parts.password:
            raise ConfigError("http sink: put credentials in `headers`, not in the url")
        if body not in ("xml", "json"):
            raise ConfigError(f"http sink: body must be 'xml' or 'json', got {body!r}")
        if timeout <= 0:
            raise ConfigError(f"http sink: timeout must be > 0 seconds, got {timeout!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= 1000:
            raise ConfigError(f"http sink: batch_size must be an integer 1..1000, got {batch_size!r}")
        if not isinstance(batch_linger_ms, int | float) or not 0 <= batch_linger_ms <= 10_000:
            raise ConfigError(f"http sink: batch_linger_ms must be 0..10000 milliseconds, got {batch_linger_ms!r}")
        clash = sorted(h for h in (headers or {}) if h.lower() in RESERVED_HEADERS)
        if clash:
            raise ConfigError(f"http sink: headers {clash} are set by renkei and cannot be configured")
        self.url = url
        self.body = body
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.name = name or parts.netloc
        self.batch_size = batch_size
        self.batch_linger = batch_linger_ms / 1000
        self._joiner: GroupCommit[Outbound] | None = None
        self._use_client(client, http_client)

    async def deliver(self, message: Outbound) -> Receipt:
        if self.batch_size > 1:
            if self._joiner is None:
                self._joiner = GroupCommit(self._joined, max_batch=self.batch_size, max_delay=self.batch_linger)
            receipt: Receipt = await self._joiner.submit(message)
            return receipt
        return await self._deliver_one(message)

    async def deliver_many(self, messages: Sequence[Outbound]) -> list[ItemResult]:
        """One request per `batch_size` messages; the receipt or the error of each, in order.
        Raises TransientError / PermanentError when a whole request failed."""
        results: list[ItemResult] = []
        for start in range(0, len(messages), self.batch_size):
            results.extend(await self._post_batch(messages[start:start + self.batch_size]))
        return results

    async def _joined(self, messages: list[Outbound]) -> list[Receipt | Failed]:
        """The messages `deliver` joined: one batch request (even of one), each caller's own outcome."""
        return [r if isinstance(r, Receipt) else Failed(r) for r in await self._post_batch(messages)]

    async def _post_batch(self, messages: Sequence[Outbound]) -> list[ItemResult]:
        destination = messages[0].envelope.destination or self.name
        headers = {**self.headers, "Content-Type": BATCH_CONTENT_TYPE, BATCH_SIZE_HEADER: str(len(messages))}
        with map_http_errors(destination):
            response = await self._http().post(self.url, content=encode_batch(messages, self.body), headers=headers,
                                               timeout=self.timeout)
            response.raise_for_status()
        return item_results(destination, messages, response)

    async def aclose(self) -> None:
        if self._joiner is not None:
            await self._joiner.aclose()
            self._joiner = None
        await super().aclose()

    async def _deliver_one(self, message: Outbound) -> Receipt:
        envelope = message.envelope
        destination = envelope.destination or self.name
        if self.body == "xml":
            content, content_type = message.xml, "application/xml"
        else:
            content, content_type = record_to_json(message.record), "application/json"
        headers = {**self.headers, **envelope_headers(message), "Content-Type": content_type}
        with map_http_errors(destination):
            client = self._http()
            response = await client.post(self.url, content=content, headers=headers, timeout=self.timeout)
            response.raise_for_status()
        return Receipt(
            destination=destination,
            idempotency_key=envelope.idempotency_key,
            status=receipt_status(response),
            reference=receipt_reference(response),
        )

    def __repr__(self) -> str:
        batch = f", batch_size={self.batch_size}" if self.batch_size > 1 else ""
        return f"HttpSink({self.name!r}, body={self.body!r}{batch})"


def envelope_headers(message: Outbound) -> dict[str, str]:
    """The renkei headers of one message: identifiers and pseudonyms only."""
    env = message.envelope
    return {
        "Idempotency-Key": env.idempotency_key,
        "X-Renkei-Message-Id": env.message_id,
        "X-Renkei-Kind": env.kind,
        "X-Renkei-Schema-Version": str(env.schema_version),
        "X-Renkei-Municipality": env.municipality,
        "X-Renkei-Subject": env.subject,
        "X-Renkei-Sequence": str(env.sequence),
    }


def record_to_json(record: Mapping[str, Any]) -> bytes:
    """The record as UTF-8 JSON: dates ISO 8601, field order kept, non-ASCII as is."""
    return dumps_json(record)


