"""HttpClient: post to the bus's HTTP intake with httpx (see bus.client)."""

from __future__ import annotations

from typing import Any

import httpx

from bus.client.base import DEFAULT_RETRY, Answer, Client, PublishRefused, PublishUnavailable, RetryOptions

__all__ = ["HttpClient"]


class HttpClient(Client):
    """Posts to the bus's HTTP intake (``<url>/v1/messages``) with the source's token."""

    def __init__(self, url: str, *, token: str | None = None, source: str | None = None, timeout: float = 30.0,
                 catalog: Any = None, validate_first: bool = True, retry: RetryOptions = DEFAULT_RETRY,
                 client: httpx.Client | None = None, window: int = 8) -> None:
        super().__init__(catalog=catalog, validate_first=validate_first, retry=retry)
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        if not url.startswith(("http://", "https://")):
            raise ValueError("an HTTP client needs an http:// or https:// URL")
        self.url = url if url.rstrip("/").endswith("/v1/messages") else url.rstrip("/") + "/v1/messages"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        if source:
            self.headers["X-Renkei-Source"] = source
        self._http = client or httpx.Client(timeout=timeout)
        self._owns = client is None

    def _send(self, raw: bytes, content_type: str, kind: str | None, attempt: int) -> Answer:
        headers = {**self.headers, "Content-Type": content_type}
        if kind:
            headers["X-Renkei-Kind"] = kind
        try:
            response = self._http.post(self.url, content=raw, headers=headers)
        except httpx.TransportError as exc:
            raise PublishUnavailable(f"{self.url}: {type(exc).__name__}") from exc
        status = response.status_code
        if status in (429, 502, 503, 504):
            raise PublishUnavailable(f"{self.url}: HTTP {status}, try again later")
        if status in (401, 403):
            raise PublishRefused(f"{self.url}: HTTP {status}: {_reason(response)}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or status >= 500:
            raise PublishUnavailable(f"{self.url}: HTTP {status} without a renkei answer")
        return Answer.from_json(body, attempt)

    def close(self) -> None:
        if self._owns:
            self._http.close()


def _reason(response: httpx.Response) -> str:
    try:
        issues = response.json().get("issues") or [{}]
        return str(issues[0].get("message", response.reason_phrase))[:200]
    except (ValueError, AttributeError, IndexError):
        return response.reason_phrase
