"""The one place where HTTP outcomes become renkei delivery errors.

httpx's ``map_httpcore_exceptions()`` is the model: a context manager around the request
translates every failure into the small tree of ``bus.errors``:

    2xx                                   → the caller builds a Receipt (see `receipt_status`)
    408, 425, 429, 5xx                    → HttpTransientError (a TransientError)
    409 (same key still being processed)  → HttpTransientError, as the IETF
                                            Idempotency-Key draft asks the client to retry
    any other 3xx / 4xx                   → HttpPermanentError (a PermanentError)
    timeout, connection refused/reset,
    protocol error (cut connection)       → HttpTransientError (status None)
    invalid URL or request                → HttpPermanentError (status None)

Errors carry the status and a short reason: the reason phrase, plus validation issue
*codes* when the receiver answered with renkei-style issues. Never the body itself, which
may echo personal data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import httpx

from bus.errors import PermanentError, TransientError

__all__ = [
    "TRANSIENT_STATUS",
    "HttpPermanentError",
    "HttpTransientError",
    "map_http_errors",
    "receipt_reference",
    "receipt_status",
]

#: statuses (besides 5xx) that mean "try again later"
TRANSIENT_STATUS = frozenset({408, 409, 425, 429})
#: headers a receiver may set on a 2xx to say "already had it"
DUPLICATE_HEADERS = ("Idempotency-Replayed", "X-Renkei-Duplicate")
_MAX_CODES = 5


class HttpTransientError(TransientError):
    """The destination could not take the message now (status None: no answer at all)."""

    def __init__(
        self, destination: str, reason: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.destination = destination
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{destination}: {where}: {reason}")


class HttpPermanentError(PermanentError):
    """The destination refused the message for good; `codes` are the receiver's issue codes."""

    def __init__(
        self, destination: str, reason: str, status: int | None = None, codes: tuple[str, ...] = ()
    ) -> None:
        self.destination = destination
        self.status = status
        self.reason = reason
        self.codes = codes
        where = f"HTTP {status}" if status is not None else "request error"
        detail = f" [{', '.join(codes)}]" if codes else ""
        super().__init__(f"{destination}: {where}: {reason}{detail}")


@contextmanager
def map_http_errors(destination: str) -> Iterator[None]:
    """Run an httpx exchange; raise renkei errors for everything but a 2xx.

    Inside the block, call ``response.raise_for_status()`` so that statuses are mapped
    here too::

        with map_http_errors("zei"):
            response = await client.post(url, content=body)
            response.raise_for_status()
    """
    try:
        yield
    except httpx.HTTPStatusError as exc:
        raise _from_status(destination, exc.response) from None
    except httpx.TimeoutException as exc:
        raise HttpTransientError(destination, f"timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        # ConnectError, ReadError, WriteError, RemoteProtocolError, ProxyError, ...
        # UnsupportedProtocol is a TransportError too but will never succeed.
        if isinstance(exc, httpx.UnsupportedProtocol):
            raise HttpPermanentError(destination, "unsupported URL scheme") from None
        raise HttpTransientError(destination, f"connection failed ({type(exc).__name__})") from None
    except (httpx.InvalidURL, httpx.HTTPError) as exc:
        raise HttpPermanentError(destination, f"invalid request ({type(exc).__name__})") from None


def receipt_status(response: httpx.Response) -> Literal["applied", "duplicate"]:
    """For a 2xx: did the receiver apply the message now, or had it already?

    A receiver says "duplicate" with a JSON body ``{"status": "duplicate"}`` or a header
    ``Idempotency-Replayed: true`` / ``X-Renkei-Duplicate: true``.
    """
    for name in DUPLICATE_HEADERS:
        if response.headers.get(name, "").strip().lower() in {"true", "1", "yes"}:
            return "duplicate"
    body = _json(response)
    if isinstance(body, dict) and str(body.get("status", "")).lower() == "duplicate":
        return "duplicate"
    return "applied"


def receipt_reference(response: httpx.Response) -> str | None:
    """The receiver's own reference for what it stored, if it gave one (JSON `reference`)."""
    body = _json(response)
    if isinstance(body, dict):
        ref = body.get("reference")
        if isinstance(ref, str | int) and len(str(ref)) <= 128:
            return str(ref)
    return None


def _from_status(destination: str, response: httpx.Response) -> TransientError | PermanentError:
    status = response.status_code
    reason = response.reason_phrase or httpx.codes.get_reason_phrase(status) or "error"
    if status >= 500 or status in TRANSIENT_STATUS:
        return HttpTransientError(destination, reason, status, _retry_after(response))
    return HttpPermanentError(destination, reason, status, _issue_codes(response))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date is legal but rare; the retry policy decides instead
    return seconds if seconds >= 0 else None


def _issue_codes(response: httpx.Response) -> tuple[str, ...]:
    """Issue codes (e.g. R300) from a renkei-style 422 body; codes only, never values."""
    body = _json(response)
    issues = body.get("issues") if isinstance(body, dict) else None
    if not isinstance(issues, list):
        return ()
    codes: list[str] = []
    for issue in issues:
        code = issue.get("code") if isinstance(issue, dict) else None
        if isinstance(code, str) and code.isascii() and len(code) <= 16 and code not in codes:
            codes.append(code)
        if len(codes) >= _MAX_CODES:
            break
    return tuple(codes)


def _json(response: httpx.Response) -> Any:
    if "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        return json.loads(response.content[:65536])
    except ValueError:
        return None
