"""The receiver kit: runs the delivery contract (docs/delivery-contract.md) against a vendor's
endpoint and reports each rule as a `Check` with its evidence.

    report = await ReceiverKit(ReceiverOptions("zei", "http://127.0.0.1:8700/messages"), catalog).run()

The requests are the HTTP sink's own (its header function, its body encodings, its status
mapping in adapters.transports.errors), so what passes here is what the bus will do.
Checks, by stable name:

- ``valid_changes_applied``: a change of every 異動事由 group the kind takes is answered 2xx,
  and each has one effect in the read-back;
- ``boundary_values_applied``: a change with every text field at its maxLength (no 外字), and
  one without any optional field it can do without, are answered 2xx and applied once;
- ``idempotency_key_honoured``: resending a key is answered 2xx and has no second effect;
- ``per_resident_order``: changes of one resident, sent one after the other, are applied in
  that order;
- ``invalid_refused_for_good``: a body that is not well-formed, and one labelled as another kind,
  are answered 4xx (not 2xx, not a retryable status) with no effect;
- ``missing_key_refused``: a request without Idempotency-Key is answered 4xx, no effect;
- ``failure_has_no_effect``: while the receiver fails (steered through its ``/control``, as
  the simulators are) it answers a retryable status with no effect, and the retry is
  applied once; not applicable without a control endpoint;
- ``answers_within_timeout``: every answer came within the timeout the bus uses;
- ``batch_answers_item_by_item`` (bus.conformance.batch): with ``--batch``, one batch with a
  broken item and a resend is answered item by item, keys honoured; not applicable without.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from adapters.transports.errors import TRANSIENT_STATUS, receipt_status
from adapters.transports.http import envelope_headers, record_to_json
from bus.catalog import Catalog
from bus.conformance.batch import batch_check
from bus.conformance.changes import ChangeMaker, new_subject, reason_of
from bus.conformance.readback import FileReadback, HttpReadback, Readback, effects_of, settle
from bus.conformance.report import Check, Report
from bus.ports import Outbound

__all__ = ["Answer", "ReceiverKit", "ReceiverOptions"]


@dataclass(frozen=True, slots=True)
class ReceiverOptions:
    system: str
    url: str
    timeout: float = 10.0
    body: Literal["xml", "json"] = "xml"
    applied_keys: Path | None = None  # a file of applied keys, instead of GET <base>/received
    batch: bool = False
    per_group: int = 2  # changes per 異動事由 group
    order_length: int = 5  # changes of one resident for the order check
    settle: float = 5.0  # seconds to wait for effects to show in the read-back
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Authorization


@dataclass(frozen=True, slots=True)
class Answer:
    """One exchange: the status (None: no answer), what it means in the contract, the time."""

    status: int | None
    meaning: str  # applied | duplicate | refused | retry | no answer
    seconds: float
    codes: tuple[str, ...] = ()
    error: str | None = None

    def text(self) -> str:
        head = f"HTTP {self.status}" if self.status is not None else f"no answer ({self.error})"
        codes = f" [{', '.join(self.codes)}]" if self.codes else ""
        return f"{head} → {self.meaning}{codes} in {self.seconds:.3f} s"


class ReceiverKit:
    def __init__(self, options: ReceiverOptions, catalog: Catalog) -> None:
        from adapters.simulators.state import SYSTEMS

        if options.system not in SYSTEMS:
            raise ValueError(f"unknown system {options.system!r}; known: {', '.join(SYSTEMS)}")
        self.options = options
        self.kind = SYSTEMS[options.system].kind
        self.maker = ChangeMaker(catalog, self.kind, options.system)
        self.answers: list[Answer] = []
        self.readback: Readback | None = None
        self.applied: list[Outbound] = []  # the valid changes applied (resent by later checks)
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client of the running kit (`run`)."""
        assert self._client is not None, "the kit is not running"
        return self._client

    async def run(self) -> Report:
        report = Report("receiver", self.options.system, self.options.url)
        async with httpx.AsyncClient(timeout=self.options.timeout, follow_redirects=False) as client:
            self._client = client
            self.readback = await self._readback(client)
            for step in (self._valid_changes, self._boundaries, self._idempotency, self._order, self._invalid,
                         self._missing_key, self._failure, self._timeouts, self._batch):
                started = time.monotonic()
                check = await step()
                check.seconds = time.monotonic() - started
                report.checks.append(check)
        return report

    # -- the checks -----------------------------------------------------------------------

    async def _valid_changes(self) -> Check:
        check = Check("valid_changes_applied", "a change of every 異動事由 group is answered 2xx and applied once")
        self.applied = []
        for record in self.maker.records(self.options.per_group):
            message = self.maker.message(record)
            answer = await self.send(message)
            line = f"{reason_of(record)} key {_short(message)}: {answer.text()}"
            if answer.meaning in ("applied", "duplicate"):
                check.note(line)
                self.applied.append(message)
            else:
                check.fail(line)
        if not self.applied and not check.failed:
            check.fail(f"no change of {self.kind} could be made")
        await self.expect_effects(check, self.applied, 1)
        return check

    async def _boundaries(self) -> Check:
        check = Check("boundary_values_applied",
                      "changes with every text field at its maxLength, and with no optional field, are applied")
        base = next(iter(self.maker.records(1)))
        sent: list[Outbound] = []
        for what, record in self.maker.edge_records(base):
            message = self.maker.message(record)
            answer = await self.send(message)
            line = f"{what}, key {_short(message)}: {answer.text()}"
            (check.note if answer.meaning in ("applied", "duplicate") else check.fail)(line)
            sent.append(message)
        if not sent:
            check.not_applicable(f"no boundary case of {self.kind} could be made valid")
        await self.expect_effects(check, [m for m in sent if not check.failed], 1)
        return check

    async def _idempotency(self) -> Check:
        check = Check("idempotency_key_honoured", "a resent Idempotency-Key is answered 2xx with no second effect")
        if not self.applied:
            check.fail("no change was applied, so none could be resent")
            return check
        message = self.applied[0]
        for attempt in (1, 2):
            answer = await self.send(message)
            line = f"resend {attempt} of key {_short(message)}: {answer.text()}"
            if answer.meaning == "applied":
                check.note(line + " (2xx; answering {\"status\": \"duplicate\"} is better)")
            elif answer.meaning == "duplicate":
                check.note(line)
            else:
                check.fail(line + ": a resend must be answered 2xx")
        await self.expect_effects(check, [message], 1)
        return check

    async def _order(self) -> Check:
        check = Check("per_resident_order", "changes of one resident are applied in the order sent")
        records = list(self.maker.records(self.options.per_group))
        subject = new_subject()
        sent: list[Outbound] = []
        for sequence in range(1, self.options.order_length + 1):
            message = self.maker.message(records[(sequence - 1) % len(records)], subject=subject, sequence=sequence)
            answer = await self.send(message)
            if answer.meaning not in ("applied", "duplicate"):
                check.fail(f"sequence {sequence} key {_short(message)}: {answer.text()}")
                return check
            sent.append(message)
        check.note(f"sent sequences 1..{len(sent)} of one resident, each after the previous was answered 2xx")
        if self.readback is None:
            check.not_applicable("no read-back (GET <base>/received or --applied-keys): the order applied is unknown")
            return check
        keys = [m.envelope.idempotency_key for m in sent]
        ids = {m.envelope.message_id: m.envelope.idempotency_key for m in sent}
        wanted = [(m.envelope.idempotency_key, m.envelope.message_id) for m in sent]
        applied = await settle(self.readback, lambda a: all(effects_of(a, k, i) for k, i in wanted),
                               self.options.settle)
        order = [x.key if x.key in keys else ids.get(x.message_id or "", "") for x in applied]
        seen = [k for k in order if k in keys]
        positions = [keys.index(k) + 1 for k in dict.fromkeys(seen)]
        check.note(f"read back from {self.readback.where}: applied as sequences {positions}")
        if positions != list(range(1, len(keys) + 1)):
            check.fail(f"applied in the order {positions}, sent as 1..{len(keys)}")
        return check

    async def _invalid(self) -> Check:
        check = Check("invalid_refused_for_good", "a message that can never be applied is answered 4xx, no effect")
        base = self.maker.message(next(iter(self.maker.records(1))))
        other = "kokuho.jumin" if self.kind != "kokuho.jumin" else "zei.jumin"
        cases = [
            ("a body that is not well-formed XML", self.maker.message(base.record), b"<ResidentNotice><broken"),
            (f"a message labelled as another kind (X-Renkei-Kind: {other})", self.maker.message(base.record), None),
        ]
        refused: list[Outbound] = []
        for what, message, content in cases:
            headers = {}
            if content is None:
                headers = {"X-Renkei-Kind": other}
            answer = await self.send(message, content=content, headers=headers, content_type="application/xml")
            line = f"{what}, key {_short(message)}: {answer.text()}"
            if answer.meaning == "refused":
                check.note(line)
            elif answer.meaning == "retry":
                check.fail(line + ": a retryable answer makes the bus resend it until its deadline")
            else:
                check.fail(line + ": it must be refused (4xx)")
            refused.append(message)
        await self.expect_effects(check, refused, 0)
        return check

    async def _missing_key(self) -> Check:
        check = Check("missing_key_refused", "a request without Idempotency-Key is answered 4xx, no effect")
        message = self.maker.message(next(iter(self.maker.records(1))))
        answer = await self.send(message, drop=("Idempotency-Key",))
        line = f"no Idempotency-Key, message id {message.envelope.message_id[:12]}…: {answer.text()}"
        (check.note if answer.meaning == "refused" else check.fail)(line)
        await self.expect_effects(check, [message], 0)
        return check

    async def _failure(self) -> Check:
        check = Check("failure_has_no_effect", "a receiver that cannot apply now answers 5xx, with no effect")
        assert self._client is not None
        control = str(httpx.URL(self.options.url).join("control"))
        try:
            response = await self._client.post(control, json={"mode": "fail", "fail_status": 503, "count": 1},
                                               headers=self.options.headers)
        except httpx.HTTPError as exc:
            response = None
            check.note(f"{control}: {type(exc).__name__}")
        if response is None or response.status_code != 200:
            check.not_applicable(f"the receiver has no control endpoint ({control}) to make it fail; "
                                 "check your own outage answers by hand: they must be 5xx or 429/503")
            return check
        message = self.maker.message(next(iter(self.maker.records(1))))
        failed = await self.send(message)
        line = f"told to fail once, key {_short(message)}: {failed.text()}"
        (check.note if failed.meaning == "retry" else check.fail)(line)
        await self.expect_effects(check, [message], 0)
        retried = await self.send(message)
        line = f"the retry of key {_short(message)}: {retried.text()}"
        (check.note if retried.meaning == "applied" else check.fail)(line)
        await self.expect_effects(check, [message], 1)
        return check

    async def _timeouts(self) -> Check:
        check = Check("answers_within_timeout", f"every answer comes within {self.options.timeout:g} s")
        answered = [a for a in self.answers if a.status is not None]
        silent = [a for a in self.answers if a.status is None]
        if answered:
            slowest = max(a.seconds for a in answered)
            check.note(f"{len(answered)} answers, the slowest in {slowest:.3f} s")
        for a in silent:
            check.fail(a.text())
        if not self.answers:
            check.fail("no request was made")
        return check

    async def _batch(self) -> Check:
        return await batch_check(self)

    # -- exchanges --------------------------------------------------------------------------

    async def send(self, message: Outbound, *, content: bytes | None = None, headers: dict[str, str] | None = None,
                   content_type: str | None = None, drop: tuple[str, ...] = ()) -> Answer:
        """POST one message as the HTTP sink does; the answer in the contract's terms."""
        assert self._client is not None
        if content is None:
            content, content_type = ((message.xml, "application/xml") if self.options.body == "xml"
                                     else (record_to_json(message.record), "application/json"))
        sent = {**self.options.headers, **envelope_headers(message), "Content-Type": content_type or "",
                **(headers or {})}
        for name in drop:
            sent.pop(name, None)
        started = time.monotonic()
        try:
            response = await self._client.post(self.options.url, content=content, headers=sent)
        except httpx.TimeoutException:
            answer = Answer(None, "no answer", time.monotonic() - started, error="timed out")
        except httpx.TransportError as exc:
            answer = Answer(None, "no answer", time.monotonic() - started, error=type(exc).__name__)
        else:
            answer = _meaning(response, time.monotonic() - started)
        self.answers.append(answer)
        return answer

    async def _readback(self, client: httpx.AsyncClient) -> Readback | None:
        if self.options.applied_keys is not None:
            return FileReadback(self.options.applied_keys)
        return await HttpReadback.probe(str(httpx.URL(self.options.url).join("received")), client)

    async def expect_effects(self, check: Check, messages: list[Outbound], effects: int) -> None:
        """Note the read-back of `messages`; fail the check unless each had `effects` effects."""
        if not messages:
            return
        if self.readback is None:
            check.note("no read-back (GET <base>/received or --applied-keys): effects not counted")
            return
        wanted = [(m.envelope.idempotency_key, m.envelope.message_id) for m in messages]

        def done(applied: list[Any]) -> bool:
            return all(effects_of(applied, k, i) >= effects for k, i in wanted)

        applied = await settle(self.readback, done, self.options.settle if effects else 0.3)
        counts = [effects_of(applied, k, i) for k, i in wanted]
        wrong = [(k, n) for (k, _), n in zip(wanted, counts, strict=True) if n != effects]
        if wrong:
            for key, n in wrong:
                check.fail(f"read back from {self.readback.where}: key {key[:12]}… had {n} effect(s), wanted {effects}")
        else:
            check.note(f"read back from {self.readback.where}: {len(wanted)} message(s), {effects} effect(s) each")


def _meaning(response: httpx.Response, seconds: float) -> Answer:
    status = response.status_code
    if 200 <= status < 300:
        return Answer(status, receipt_status(response), seconds)
    if status >= 500 or status in TRANSIENT_STATUS:
        return Answer(status, "retry", seconds)
    return Answer(status, "refused", seconds, _codes(response))


def _codes(response: httpx.Response) -> tuple[str, ...]:
    try:
        issues = response.json().get("issues", [])
    except (ValueError, AttributeError):
        return ()
    codes = [i.get("code") for i in issues if isinstance(i, dict)] if isinstance(issues, list) else []
    return tuple(dict.fromkeys(c for c in codes if isinstance(c, str) and c.isascii() and len(c) <= 16))[:5]


def _short(message: Outbound) -> str:
    return message.envelope.idempotency_key[:12] + "…"
