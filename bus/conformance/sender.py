"""The sender kit: an intake that checks what a registry vendor's system sends.

It answers as the bus's HTTP intake does (``POST /v1/messages``: 202 accepted, 200 duplicate,
422 rejected with the issues), so a vendor points its system (or bus.client.HttpClient) at
it unchanged, and it reports, by stable name:

- ``every_message_valid``: each message passes the bus's validation (the same catalog and
  validator); evidence: the issue codes and field paths of each invalid one;
- ``history_number_increasing``: per resident (地方公共団体コード + 宛名番号), each new change
  has a higher 履歴番号 than the last one sent;
- ``no_duplicate_id_with_different_body``: a change sent again (same municipality, 宛名番号,
  履歴番号: the same message id in the bus) has the same content;
- ``corrections_refer_to_known_history``: a 取消 (TORIKESHI) names, in
  取消対象履歴番号, a 履歴番号 of the same resident that was sent before;
- ``messages_received``: something was sent at all.

Residents appear in the evidence only as ``resident #n`` (numbered in order of first
appearance): never a 宛名番号 or any other personal value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bus.catalog import Catalog
from bus.conformance.report import Check, Report
from bus.errors import ValidationFailed
from bus.validation.validator import validate

__all__ = ["SenderCheck", "create_sender_app"]

_TYPES = {"application/xml": "application/xml", "text/xml": "application/xml",
          "application/avro": "application/avro", "avro/binary": "application/avro"}
MAX_BODY = 1024 * 1024


@dataclass(slots=True)
class _Resident:
    number: int
    last: int = 0
    bodies: dict[int, str] = field(default_factory=dict)  # 履歴番号 → digest of the record


class SenderCheck:
    """What one conformance session saw; `observe` each message, then `report`."""

    def __init__(self, catalog: Catalog, *, subject: str = "POST /v1/messages") -> None:
        self.catalog = catalog
        self.subject = subject
        self.received = 0
        self._residents: dict[tuple[str, str], _Resident] = {}
        self._checks = {
            "messages_received": Check("messages_received", "the sending system sent messages"),
            "every_message_valid": Check("every_message_valid", "every message passes the bus's validation"),
            "history_number_increasing": Check("history_number_increasing",
                                               "履歴番号 increases per resident, in the order sent"),
            "no_duplicate_id_with_different_body": Check("no_duplicate_id_with_different_body",
                                                         "a change sent again has the same content"),
            "corrections_refer_to_known_history": Check("corrections_refer_to_known_history",
                                                         "a 取消 names a 履歴番号 of the same resident sent before"),
        }
        self._valid = self._corrections = 0

    def observe(self, raw: bytes, content_type: str, kind: str | None = None) -> tuple[int, dict[str, Any]]:
        """Check one message; the status and body the bus's intake would answer."""
        self.received += 1
        n = self.received
        media = _TYPES.get(content_type.split(";", 1)[0].strip().lower())
        if media is None:
            self._checks["every_message_valid"].fail(f"message {n}: content type {content_type!r} (415)")
            return 415, {"status": "rejected", "issues": [{"code": "R220", "message": "unsupported content type"}]}
        try:
            checked = validate(raw, content_type=media, kind=kind, catalog=self.catalog)
        except ValidationFailed as exc:
            where = "; ".join(f"{i.code} {i.path or '/'}" for i in exc.issues[:5])
            self._checks["every_message_valid"].fail(f"message {n}: {where}")
            return 422, {"status": "rejected", "issues": [i.to_dict() for i in exc.issues]}
        self._valid += 1
        record = checked.record
        if "history_number" not in record or "address_number" not in record:
            return 202, {"status": "accepted", "kind": checked.kind_schema.kind}
        return self._history(n, record, checked.kind_schema.kind)

    def _history(self, n: int, record: dict[str, Any], kind: str) -> tuple[int, dict[str, Any]]:
        key = (str(record.get("municipality_code")), str(record["address_number"]))
        resident = self._residents.setdefault(key, _Resident(len(self._residents) + 1))
        history = int(record["history_number"])
        digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
        who = f"message {n}, resident #{resident.number}, 履歴番号 {history}"
        if history in resident.bodies:
            if resident.bodies[history] != digest:
                self._checks["no_duplicate_id_with_different_body"].fail(
                    f"{who}: sent before with other content (the bus answers duplicate and keeps the first)")
            return 200, {"status": "duplicate", "kind": kind}
        if history <= resident.last:
            self._checks["history_number_increasing"].fail(f"{who}: after 履歴番号 {resident.last}")
        change = record.get("change") or {}
        if change.get("reason") == "TORIKESHI":
            self._corrections += 1
            target = change.get("cancelled_history_number")
            if target not in resident.bodies:
                self._checks["corrections_refer_to_known_history"].fail(
                    f"{who}: cancels 履歴番号 {target}, which this resident never sent")
        resident.bodies[history] = digest
        resident.last = max(resident.last, history)
        return 202, {"status": "accepted", "kind": kind}

    def too_large(self, limit: int) -> None:
        """A message over the size cap arrived (the intake refused it unread)."""
        self.received += 1
        self._checks["every_message_valid"].fail(f"message {self.received}: over {limit} bytes (413)")

    def report(self) -> Report:
        """The report of everything observed so far (observing more later is fine)."""
        report = Report("sender", "registry", self.subject)
        checks = {k: Check(c.name, c.title, c.outcome, list(c.evidence)) for k, c in self._checks.items()}
        if self.received == 0:
            checks["messages_received"].fail("no message arrived")
        else:
            checks["messages_received"].note(f"{self.received} messages, {self._valid} valid, "
                                             f"{len(self._residents)} residents")
        if not checks["every_message_valid"].failed:
            checks["every_message_valid"].note(f"{self._valid} of {self.received} valid")
        if not checks["history_number_increasing"].failed and self._residents:
            checks["history_number_increasing"].note(f"increasing for each of {len(self._residents)} residents")
        if not self._residents:
            for name in ("history_number_increasing", "no_duplicate_id_with_different_body"):
                if not checks[name].failed:
                    checks[name].not_applicable("no valid jumin.idou change arrived")
        if self._corrections == 0 and not checks["corrections_refer_to_known_history"].failed:
            checks["corrections_refer_to_known_history"].not_applicable("no 取消 (TORIKESHI) was sent")
        elif not checks["corrections_refer_to_known_history"].failed:
            checks["corrections_refer_to_known_history"].note(f"{self._corrections} 取消, each of a known 履歴番号")
        report.checks = list(checks.values())
        return report


def create_sender_app(check: SenderCheck, *, max_body: int = MAX_BODY) -> Starlette:
    """The kit's intake: ``POST /v1/messages`` as the bus's, ``GET /report`` the report so far."""
    from adapters.sources.http_intake import BodyTooLarge, read_limited_body

    async def submit(request: Request) -> JSONResponse:
        try:
            raw = await read_limited_body(request, max_body)
        except BodyTooLarge:
            check.too_large(max_body)
            return JSONResponse({"status": "rejected", "issues": [{"code": "R100", "message": "too large"}]}, 413)
        kind = request.query_params.get("kind") or request.headers.get("x-renkei-kind")
        status, body = check.observe(raw, request.headers.get("content-type", ""), kind)
        return JSONResponse(body, status_code=status)

    async def report(request: Request) -> JSONResponse:
        return JSONResponse({"text": check.report().to_text()})

    return Starlette(routes=[Route("/v1/messages", submit, methods=["POST"]),
                             Route("/report", report, methods=["GET"])])
