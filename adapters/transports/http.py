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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from adapters.transports.errors import map_http_errors, receipt_reference, receipt_status
from adapters.transports.httpclient import OwnedClient
from bus.errors import ConfigError
from bus.ports import Outbound, Receipt

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
    without it the sink opens its own client on first use (close it with `aclose`).
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
        clash = sorted(h for h in (headers or {}) if h.lower() in RESERVED_HEADERS)
        if clash:
            raise ConfigError(f"http sink: headers {clash} are set by renkei and cannot be configured")
        self.url = url
        self.body = body
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.name = name or parts.netloc
        self._use_client(client)

    async def deliver(self, message: Outbound) -> Receipt:
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
        return f"HttpSink({self.name!r}, body={self.body!r})"


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
    return json.dumps(record, ensure_ascii=False, default=_json_default, separators=(",", ":")).encode()


def _json_default(value: object) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
