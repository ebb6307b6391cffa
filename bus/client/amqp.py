"""AmqpClient: publish into one municipality's intake queue with kombu (see bus.client)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Sized
from typing import Any
from urllib.parse import unquote, urlsplit

import amqp.exceptions
import kombu.connection
import kombu.exceptions
import kombu.messaging

from bus.client.base import (
    DEFAULT_RETRY,
    Answer,
    BatchProgress,
    BatchResult,
    Change,
    Client,
    PublishRefused,
    PublishUnavailable,
    RetryOptions,
)
from bus.topology import SUBMIT_QUEUE

__all__ = ["AmqpClient"]

#: what kombu and py-amqp raise for the broker and the network (anything else is a bug: not retried)
_AMQP_ERRORS = (amqp.exceptions.AMQPError, kombu.exceptions.KombuError, OSError)
#: kombu's classes, untyped: held as Any so that mypy --strict takes the calls
_Connection: Any = kombu.connection.Connection
_Producer: Any = kombu.messaging.Producer


class AmqpClient(Client):
    """Publishes into one municipality's intake queue over AMQP (kombu, publisher confirms).

    `url` is the vendor's own: its broker user, in its municipality's vhost. `user_id`
    defaults to that user (RabbitMQ checks that it is the connection's). `timeout` is how
    long to wait for the bus's answer to one change.
    """

    def __init__(self, url: str, *, user_id: str | None = None, queue: str = SUBMIT_QUEUE,
                 timeout: float = 30.0, catalog: Any = None, validate_first: bool = True,
                 retry: RetryOptions = DEFAULT_RETRY, window: int = 8) -> None:
        super().__init__(catalog=catalog, validate_first=validate_first, retry=retry)
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
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
        correlation = self._publish(raw, content_type, kind)
        self._wait(lambda: correlation in self._answers)
        return Answer.from_json(self._answers.pop(correlation), attempt)

    def publish_batch(self, changes: Iterable[Change], *, kind: str | None = None,
                      content_type: str = "application/xml",
                      progress: Callable[[BatchProgress], None] | None = None) -> BatchResult:
        """As `Client.publish_batch`, with up to `window` changes published before their answers
        are read, never two of one resident. If the connection fails, the changes in flight are
        published again one by one (with retries): the bus answers "duplicate" for those it had."""
        if self.window <= 1 or not self.validate_first:
            return super().publish_batch(changes, kind=kind, content_type=content_type, progress=progress)
        total = len(changes) if isinstance(changes, Sized) else None
        answers: list[Answer | None] = []
        flight: dict[str, tuple[int, tuple[str, str] | None, bytes, str]] = {}  # correlation → index, resident, …
        result = BatchResult([])

        def take_answers() -> None:
            for correlation in [c for c in flight if c in self._answers]:
                index = flight.pop(correlation)[0]
                answers[index] = Answer.from_json(self._answers.pop(correlation))
            while len(result.answers) < len(answers) and (answer := answers[len(result.answers)]) is not None:
                self._collected(answer, result, total, progress)

        def resend_flight() -> None:  # the connection failed: one at a time, in order, with retries
            self._reset()
            for index, _, body, media in sorted(flight.values()):
                answers[index] = self.publish(body, kind=kind, content_type=media)
            flight.clear()

        def settle() -> None:
            try:
                self._wait(lambda: any(c in self._answers for c in flight))
            except PublishUnavailable:
                resend_flight()
            take_answers()

        for change in changes:
            raw, media = self._encode(change, kind, content_type)
            refused, resident = self._check(raw, media, kind)
            answers.append(refused)
            if refused is None:
                while flight and (len(flight) >= self.window or
                                  (resident is not None and resident in {f[1] for f in flight.values()})):
                    settle()
                try:
                    flight[self._publish(raw, media, kind)] = (len(answers) - 1, resident, raw, media)
                except PublishUnavailable:
                    resend_flight()
                    answers[-1] = self.publish(raw, kind=kind, content_type=media)
            take_answers()
        while flight:
            settle()
        take_answers()
        return result

    def _publish(self, raw: bytes, content_type: str, kind: str | None) -> str:
        """Publish one message (confirmed by the broker); its correlation id."""
        try:
            self._open()
            correlation = uuid.uuid4().hex
            producer = _Producer(self._channel, routing_key=self.queue)  # the default exchange
            producer.publish(raw, content_type=content_type, content_encoding="binary", delivery_mode=2,
                             mandatory=True, headers={"kind": kind} if kind else {}, reply_to=self._reply_queue,
                             correlation_id=correlation, user_id=self.user_id, retry=False)
        except _AMQP_ERRORS as exc:
            raise _mapped(exc) from exc
        return correlation

    def _wait(self, done: Callable[[], bool]) -> None:
        """Read the bus's answers until `done`; PublishUnavailable after `timeout` without it."""
        deadline = time.monotonic() + self.timeout
        try:
            while not done():
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
