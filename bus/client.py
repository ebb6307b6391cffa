"""A Python client for vendors: put changes into the bus from a batch job or a web app.

Synchronous (batch jobs and Django views are), with a typed answer per change::

    from bus.client import AmqpClient

    with AmqpClient("amqp://vendor-131016:secret@mq.example.lg.jp/renkei-131016") as client:
        answer = client.publish(xml_bytes)                  # or a record dict with kind=...
        if answer.status == "rejected":
            for issue in answer.issues: print(issue)        # code, field path, line:column

        result = client.publish_batch(changes, progress=lambda p: print(p.done, "/", p.total))
        print(result.counts())                              # {"accepted": 998, "duplicate": 2}

- `AmqpClient` publishes on kombu (the synchronous AMQP library Python batch jobs use) into
  the municipality's intake queue ``renkei.submit`` (adapters.sources.amqp_intake): publisher
  confirms, mandatory routing (no intake queue is an error, not a silent drop), persistent
  delivery, ``user_id`` set to the connection's user, and the bus's answer read from an
  exclusive reply queue.
- `HttpClient` posts to the HTTP intake (``POST /v1/messages``, adapters.sources.http_intake)
  through httpx, with the source's bearer token.

Both validate each change first with the same catalog and validator the bus uses (a change
the bus would reject is answered "rejected" without being sent: ``answer.sent`` is False),
and retry what may work later (no connection, no answer in time, 429/503) with tenacity's
jittered exponential waits. A retry is safe: the bus derives a change's id from
(municipality, 宛名番号, 履歴番号), so a change that got in before the failure is answered
"duplicate", never delivered twice. A refusal of the publisher itself (a wrong token, a
municipality the source may not send for) raises `PublishRefused` and is not retried.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import amqp.exceptions
import httpx
import kombu.connection
import kombu.exceptions
import kombu.messaging
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from bus.errors import RenkeiError, TransientError, ValidationFailed
from bus.topology import SUBMIT_QUEUE
from bus.validation.issues import Issue

__all__ = [
    "AmqpClient",
    "Answer",
    "BatchProgress",
    "BatchResult",
    "Change",
    "HttpClient",
    "PublishRefused",
    "PublishUnavailable",
    "RetryOptions",
]

Status = Literal["accepted", "duplicate", "rejected"]
#: a change: the message as bytes (XML, or Avro with kind=...), or a record dict (with kind=...)
Change = bytes | Mapping[str, Any]
_T = TypeVar("_T")
_ISSUE_FIELDS = frozenset(f.name for f in fields(Issue))
#: what kombu and py-amqp raise for the broker and the network (anything else is a bug: not retried)
_AMQP_ERRORS = (amqp.exceptions.AMQPError, kombu.exceptions.KombuError, OSError)
#: kombu's classes, untyped: held as Any so that mypy --strict takes the calls
_Connection: Any = kombu.connection.Connection
_Producer: Any = kombu.messaging.Producer


@dataclass(frozen=True, slots=True)
class Answer:
    """What the bus answered for one change (or the local validation, when `sent` is False)."""

    status: Status
    message_id: str | None = None
    kind: str | None = None
    issues: tuple[Issue, ...] = ()
    sent: bool = True
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """Accepted or already there: the bus holds the change."""
        return self.status != "rejected"

    @classmethod
    def from_json(cls, data: Mapping[str, Any], attempts: int = 1) -> Answer:
        status = data.get("status")
        if status not in ("accepted", "duplicate", "rejected"):
            raise PublishRefused(f"the bus refused the publisher: {status} "
                                 f"({data.get('code', '')}: {str(data.get('reason', ''))[:200]})")
        issues = tuple(Issue(**{k: v for k, v in i.items() if k in _ISSUE_FIELDS})
                       for i in data.get("issues") or () if isinstance(i, dict) and "code" in i)
        return cls(status, data.get("message_id"), data.get("kind"), issues, True, attempts)


@dataclass(frozen=True, slots=True)
class BatchProgress:
    done: int
    total: int | None  # None when the changes came from an iterator of unknown length
    answer: Answer


@dataclass(slots=True)
class BatchResult:
    answers: list[Answer]

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for a in self.answers:
            counted[a.status] = counted.get(a.status, 0) + 1
        return counted

    @property
    def rejected(self) -> list[tuple[int, Answer]]:
        """(position in the batch, answer) of every rejected change."""
        return [(i, a) for i, a in enumerate(self.answers) if a.status == "rejected"]


@dataclass(frozen=True, slots=True)
class RetryOptions:
    """Tries per change, and the jittered exponential wait between them (seconds)."""

    attempts: int = 5
    first_wait: float = 0.5
    max_wait: float = 10.0


class PublishRefused(RenkeiError):
    """The bus refused the publisher (token, broker user, municipality): fix the settings."""


class PublishUnavailable(TransientError):
    """No answer from the bus after every retry (it may still take the change later)."""


class _Client:
    """What both clients share: preparing, validating, retrying and batching."""

    def __init__(self, *, catalog: Any = None, validate_first: bool = True,
                 retry: RetryOptions = RetryOptions()) -> None:
        self._catalog = catalog
        self.validate_first = validate_first
        self.retry = retry

    def publish(self, change: Change, *, kind: str | None = None, content_type: str = "application/xml") -> Answer:
        """Publish one change; the bus's answer (retried as `retry` says)."""
        raw, content_type = self._encode(change, kind, content_type)
        if self.validate_first:
            refused = self._check(raw, content_type, kind)
            if refused is not None:
                return refused
        attempts = 0

        def once() -> Answer:
            nonlocal attempts
            attempts += 1
            return self._send(raw, content_type, kind, attempts)

        return self._retrying(once)

    def publish_batch(self, changes: Iterable[Change], *, kind: str | None = None,
                      content_type: str = "application/xml",
                      progress: Callable[[BatchProgress], None] | None = None) -> BatchResult:
        """Publish each change in order; `progress` is called after each answer."""
        total = len(changes) if isinstance(changes, Sized) else None
        result = BatchResult([])
        for change in changes:
            answer = self.publish(change, kind=kind, content_type=content_type)
            result.answers.append(answer)
            if progress is not None:
                progress(BatchProgress(len(result.answers), total, answer))
        return result

    def catalog(self) -> Any:
        if self._catalog is None:
            from bus.catalog import Catalog

            self._catalog = Catalog.load()
        return self._catalog

    def _encode(self, change: Change, kind: str | None, content_type: str) -> tuple[bytes, str]:
        if isinstance(change, bytes | bytearray):
            return bytes(change), content_type
        if kind is None:
            raise ValueError("a record dict needs kind=... (e.g. kind='jumin.idou')")
        if content_type == "application/avro":
            return self.catalog().get(kind).to_avro(dict(change)), content_type
        return self.catalog().get(kind).to_xml(dict(change)), "application/xml"

    def _check(self, raw: bytes, content_type: str, kind: str | None) -> Answer | None:
        from bus.validation.validator import validate

        try:
            validate(raw, content_type=content_type, kind=kind, catalog=self.catalog())
        except ValidationFailed as exc:
            return Answer("rejected", None, kind, tuple(exc.issues), sent=False, attempts=0)
        return None

    def _retrying(self, call: Callable[[], _T]) -> _T:
        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_random_exponential(multiplier=self.retry.first_wait, max=self.retry.max_wait),
            before_sleep=lambda _state: self._reset(),
            reraise=True,
        )
        return retrying(call)

    def _send(self, raw: bytes, content_type: str, kind: str | None, attempt: int) -> Answer:
        raise NotImplementedError

    def _reset(self) -> None:
        """Forget a connection that failed, so the next try opens a new one."""

    def close(self) -> None: ...

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_C = TypeVar("_C", bound=_Client)


class AmqpClient(_Client):
    """Publishes into one municipality's intake queue over AMQP (kombu, publisher confirms).

    `url` is the vendor's own: its broker user, in its municipality's vhost. `user_id`
    defaults to that user (RabbitMQ checks that it is the connection's). `timeout` is how
    long to wait for the bus's answer to one change.
    """

    def __init__(self, url: str, *, user_id: str | None = None, queue: str = SUBMIT_QUEUE,
                 timeout: float = 30.0, catalog: Any = None, validate_first: bool = True,
                 retry: RetryOptions = RetryOptions()) -> None:
        super().__init__(catalog=catalog, validate_first=validate_first, retry=retry)
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError(f"an AMQP client needs an amqp:// or amqps:// URL, got scheme {parts.scheme!r}")
        self.url = url
        self.user_id = user_id if user_id is not None else unquote(parts.username or "guest")
        self.queue = queue
        self.timeout = timeout
        self._connection: Any = None
        self._channel: Any = None
        self._reply_queue = ""
        self._answers: dict[str, dict[str, Any]] = {}

    def _open(self) -> None:
        if self._channel is not None:
            return
        connection = _Connection(self.url, transport_options={"confirm_publish": True}, connect_timeout=10)
        try:
            channel = connection.channel()
            self._reply_queue, _, _ = channel.queue_declare(queue="", exclusive=True, auto_delete=True)
            channel.basic_consume(queue=self._reply_queue, no_ack=True, callback=self._on_answer)
        except _AMQP_ERRORS as exc:
            connection.release()
            raise _mapped(exc) from exc
        self._connection, self._channel = connection, channel

    def _on_answer(self, message: Any) -> None:
        import json

        correlation = message.properties.get("correlation_id")
        if correlation:
            self._answers[str(correlation)] = json.loads(message.body)

    def _send(self, raw: bytes, content_type: str, kind: str | None, attempt: int) -> Answer:
        try:
            self._open()
            correlation = uuid.uuid4().hex
            producer = _Producer(self._channel, routing_key=self.queue)  # the default exchange
            producer.publish(raw, content_type=content_type, content_encoding="binary", delivery_mode=2,
                             mandatory=True, headers={"kind": kind} if kind else {}, reply_to=self._reply_queue,
                             correlation_id=correlation, user_id=self.user_id, retry=False)
            deadline = time.monotonic() + self.timeout
            while correlation not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PublishUnavailable(f"no answer from the bus within {self.timeout:g} s "
                                             f"(queue {self.queue!r}: is the bus's AMQP intake running?)")
                try:
                    self._connection.drain_events(timeout=min(left, 1.0))
                except TimeoutError:
                    continue
        except _AMQP_ERRORS as exc:
            raise _mapped(exc) from exc
        return Answer.from_json(self._answers.pop(correlation), attempt)

    def _reset(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._answers.clear()
        if connection is not None:
            with contextlib.suppress(*_AMQP_ERRORS):  # already broken: nothing left to close
                connection.release()

    def close(self) -> None:
        self._reset()


def _mapped(exc: Exception) -> Exception:
    """kombu/py-amqp errors as the client's: a refusal of the user is for good, the rest transient."""
    if isinstance(exc, amqp.exceptions.AccessRefused | amqp.exceptions.NotAllowed):
        return PublishRefused(f"the broker refused the publisher: {exc}")
    if isinstance(exc, amqp.exceptions.ChannelError) and getattr(exc, "reply_code", None) == 312:
        return PublishUnavailable("the message was returned unroutable: no intake queue in this vhost "
                                  "(is the bus's AMQP intake for this municipality running?)")
    return PublishUnavailable(f"AMQP: {type(exc).__name__}: {str(exc)[:200]}")


class HttpClient(_Client):
    """Posts to the bus's HTTP intake (``<url>/v1/messages``) with the source's token."""

    def __init__(self, url: str, *, token: str | None = None, source: str | None = None, timeout: float = 30.0,
                 catalog: Any = None, validate_first: bool = True, retry: RetryOptions = RetryOptions(),
                 client: httpx.Client | None = None) -> None:
        super().__init__(catalog=catalog, validate_first=validate_first, retry=retry)
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
