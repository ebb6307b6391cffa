"""The shared part of the vendor clients (bus.client): answers, retries, batches."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from bus.errors import RenkeiError, TransientError, ValidationFailed
from bus.validation.issues import Issue

__all__ = ["DEFAULT_RETRY", "Answer", "BatchProgress", "BatchResult", "Change", "Client", "PublishRefused",
           "PublishUnavailable", "RetryOptions"]

Status = Literal["accepted", "duplicate", "rejected"]
#: a change: the message as bytes (XML, or Avro with kind=...), or a record dict (with kind=...)
Change = bytes | Mapping[str, Any]
_T = TypeVar("_T")
_ISSUE_FIELDS = frozenset(f.name for f in fields(Issue))


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


#: five tries, 0.5 s first wait, 10 s at most
DEFAULT_RETRY = RetryOptions()


class PublishRefused(RenkeiError):
    """The bus refused the publisher (token, broker user, municipality): fix the settings."""


class PublishUnavailable(TransientError):
    """No answer from the bus after every retry (it may still take the change later)."""


class Client:
    """What both clients share: preparing, validating, retrying and batching."""

    #: changes in flight at once in a batch (1: one after the other)
    window = 1

    def __init__(self, *, catalog: Any = None, validate_first: bool = True,
                 retry: RetryOptions = DEFAULT_RETRY) -> None:
        self._catalog = catalog
        self.validate_first = validate_first
        self.retry = retry

    def publish(self, change: Change, *, kind: str | None = None, content_type: str = "application/xml") -> Answer:
        """Publish one change; the bus's answer (retried as `retry` says)."""
        raw, content_type = self._encode(change, kind, content_type)
        if self.validate_first:
            refused, _ = self._check(raw, content_type, kind)
            if refused is not None:
                return refused
        return self._send_retried(raw, content_type, kind)

    def publish_batch(self, changes: Iterable[Change], *, kind: str | None = None,
                      content_type: str = "application/xml",
                      progress: Callable[[BatchProgress], None] | None = None) -> BatchResult:
        """Publish each change; `progress` is called after each answer, in the batch's order.

        With `window` > 1 (HttpClient) and validation first, up to `window` changes are in
        flight at once, but never two of one resident: a resident's change is sent only after
        its previous one was answered, so the bus gets each resident's changes in order.
        """
        total = len(changes) if isinstance(changes, Sized) else None
        result = BatchResult([])
        if self.window <= 1 or not self.validate_first:
            for change in changes:
                self._collected(self.publish(change, kind=kind, content_type=content_type), result, total, progress)
            return result
        pending: deque[Future[Answer]] = deque()
        last: dict[tuple[str, str], Future[Answer]] = {}
        with ThreadPoolExecutor(self.window, thread_name_prefix="renkei-client") as pool:
            for change in changes:
                raw, media = self._encode(change, kind, content_type)
                refused, resident = self._check(raw, media, kind)
                if refused is not None:
                    future: Future[Answer] = Future()
                    future.set_result(refused)
                else:
                    future = pool.submit(self._after, last.get(resident) if resident else None, raw, media, kind)
                    if resident:
                        last[resident] = future
                pending.append(future)
                while pending and (len(pending) >= 4 * self.window or pending[0].done()):
                    self._collected(pending.popleft().result(), result, total, progress)
            while pending:
                self._collected(pending.popleft().result(), result, total, progress)
        return result

    def _after(self, before: Future[Answer] | None, raw: bytes, content_type: str, kind: str | None) -> Answer:
        if before is not None and before.exception() is not None:
            raise PublishUnavailable("an earlier change of the same resident was not published; "
                                     "this one is held back so that the bus gets them in order")
        return self._send_retried(raw, content_type, kind)

    def _send_retried(self, raw: bytes, content_type: str, kind: str | None) -> Answer:
        attempts = 0

        def once() -> Answer:
            nonlocal attempts
            attempts += 1
            return self._send(raw, content_type, kind, attempts)

        return self._retrying(once)

    @staticmethod
    def _collected(answer: Answer, result: BatchResult, total: int | None,
                   progress: Callable[[BatchProgress], None] | None) -> None:
        result.answers.append(answer)
        if progress is not None:
            progress(BatchProgress(len(result.answers), total, answer))

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

    def _check(self, raw: bytes, content_type: str,
               kind: str | None) -> tuple[Answer | None, tuple[str, str] | None]:
        """(the local rejection or None, the resident: 地方公共団体コード and 宛名番号 when it has them)."""
        from bus.validation.validator import validate

        try:
            record = validate(raw, content_type=content_type, kind=kind, catalog=self.catalog()).record
        except ValidationFailed as exc:
            return Answer("rejected", None, kind, tuple(exc.issues), sent=False, attempts=0), None
        if record.get("address_number") is None:
            return None, None
        return None, (str(record.get("municipality_code")), str(record["address_number"]))

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


_C = TypeVar("_C", bound=Client)
