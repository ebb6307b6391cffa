"""The HTTP service of one simulated receiving system (a starlette app).

::

    POST /messages    one message (application/xml or application/json), headers as the
                      HTTP sink sends them; Idempotency-Key required
        200 {"status": "applied", "key", "reference"}      first time: one effect
        200 {"status": "duplicate", "key", "reference"}    repeated key: no second effect
        422 {"status": "rejected", "issues": [...]}        invalid for the expected kind,
                                                           or told to reject
        <fail_status> {"status": "failed"}                 told to fail (Retry-After: 1)
        (connection cut, no answer)                        told to be down
    POST /messages    a batch (application/vnd.renkei.batch+json, adapters.simulators.batch):
        200 {"items": [{"idempotency_key", "status": applied|duplicate|rejected|retry, ...}]}
    GET  /received    counts (effects, duplicates, rejected, failed, requests, held), the
                      behaviour, and the ids of the messages held (never their bodies)
    GET  /control     the behaviour;  POST /control {"mode": ..., ...} sets it (see Behaviour)
    GET  /healthz     200 {"status": "ok", "system", "kind"}

The 中間サーバー simulator (`chukan`) also rejects (422, code S401) any message with an
element or field named ``personal_number``, or a 12-digit value passing the 個人番号 check
digit outside the fields that are legitimately numeric ids: the intermediate server must
never receive a 個人番号.

While "down", every path but /control answers by cutting the connection mid-response: the
client sees a broken connection (httpx.RemoteProtocolError), as from a crashing server.
To refuse connections outright, `SimulatorCluster.take_down()` closes the listening socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.simulators.batch import BATCH_MEDIA, answer_batch, whole_request
from adapters.simulators.items import Item, Verdict, apply_item, rejected
from adapters.simulators.state import SimulatorState
from adapters.sources.http_intake import read_limited_body
from bus.errors import BodyTooLarge, ConfigError, ValidationFailed

__all__ = ["Validate", "create_app", "has_personal_number", "personal_number_valid"]

#: validate(raw, *, content_type, kind, catalog) -> an object with `.record` (or raises ValidationFailed)
Validate = Callable[..., Any]
MAX_BODY = 1024 * 1024
_TWELVE = re.compile(r"^\d{12}$")
_DECISION = "renkei.simulator.decision"
_NO_PERSONAL_NUMBER = "the intermediate server must never receive a 個人番号 (personal_number)"
#: fields that may legitimately hold a 12-digit number (ids of the municipality, not 個人番号)
_NUMERIC_IDS = frozenset({"integrated_address_number", "household_number", "address_number"})


class SimulatedOutage(Exception):
    """Raised after a partial response to cut the connection (the "down" mode)."""


class _DropOutageLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedOutage)


logging.getLogger("uvicorn.error").addFilter(_DropOutageLogs())


def create_app(
    system: str,
    *,
    catalog: Any = None,
    validate: Validate | None = None,
    store: str | None = None,
    state: SimulatorState | None = None,
    max_body: int = MAX_BODY,
) -> Starlette:
    """The simulator of `system` (see adapters.simulators.SYSTEMS).

    `validate` defaults to ``bus.validation.validator.validate`` with `catalog` (loaded with
    ``Catalog.load()`` on first use when not given). The app's state is ``app.state.simulator``.
    """
    sim = state or SimulatorState(system, store=store)
    sim.write_later = True  # `_written` writes a request's messages to the store before its answer
    checker = _Checker(sim.kind, catalog, validate)

    def _written(verdict: Verdict) -> JSONResponse:
        """The answer, once what it says was applied is in the store (this system's, and the
        system the 統合宛名 function sent a 副本 or a notice on to)."""
        sim.flush()
        if sim.downstream is not None:
            sim.downstream.flush()
        return _answer(verdict)

    async def messages(request: Request) -> JSONResponse:
        decision, behaviour = request.scope[_DECISION]
        headers = request.headers
        key = headers.get("idempotency-key")
        try:
            raw = await read_limited_body(request, max_body)
        except BodyTooLarge:
            return _answer(rejected(sim, key, "R100", "message too large", 413))
        delay = behaviour.delay or (1.0 if decision == "slow" else 0.0)
        if delay and decision != "ok":
            await asyncio.sleep(delay)
        if decision == "fail":
            sim.failed += 1
            body = {"status": "failed", "reason": "simulated failure"}
            return JSONResponse(body, status_code=behaviour.fail_status, headers={"Retry-After": "1"})
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media == BATCH_MEDIA:
            return _written(answer_batch(sim, checker, raw))
        if decision == "reject":
            return _answer(rejected(sim, key, "S422", "rejected by the receiving system (simulated)"))
        sequence = headers.get("x-renkei-sequence", "")
        return _written(apply_item(sim, checker, Item(
            key=key, message_id=headers.get("x-renkei-message-id"), kind=headers.get("x-renkei-kind"),
            municipality=headers.get("x-renkei-municipality", ""), subject=headers.get("x-renkei-subject", ""),
            sequence=int(sequence) if sequence.isdigit() else None, media=media, raw=raw)))

    async def received(request: Request) -> JSONResponse:
        limit = request.query_params.get("limit", "")
        return JSONResponse(sim.received(int(limit) if limit.isdigit() else None))

    async def control(request: Request) -> JSONResponse:
        if request.method == "POST":
            try:
                settings = json.loads(await read_limited_body(request, 65536) or b"{}")
                if not isinstance(settings, dict):
                    raise ConfigError("control body must be a JSON object")
                sim.control(**settings)
            except (ValueError, TypeError, ConfigError, BodyTooLarge) as exc:
                return JSONResponse({"status": "error", "reason": str(exc)[:300]}, status_code=400)
        return JSONResponse(asdict(sim.behaviour))

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "system": sim.system, "kind": sim.kind})

    app = Starlette(
        routes=[
            Route("/messages", messages, methods=["POST"]),
            Route("/received", received, methods=["GET"]),
            Route("/control", control, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
    )
    app.state.simulator = sim
    app.add_middleware(_OutageMiddleware, state=sim)
    return app


class _OutageMiddleware:
    """Decides the behaviour for each POST /messages; cuts connections while "down".

    While the mode is "down", every path but /control gets a cut connection.
    """

    def __init__(self, app: ASGIApp, state: SimulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/control":
            await self.app(scope, receive, send)
            return
        sim = self.state
        if scope["path"] == "/messages" and scope["method"] == "POST":
            sim.requests += 1
            headers = dict(scope["headers"])
            if headers.get(b"content-type", b"").split(b";")[0].strip().lower() == BATCH_MEDIA.encode():
                # a batch: fail, slow, down for the whole request; reject (or one key's) item by item
                scope[_DECISION] = decision = sim.decide(None) if whole_request(sim) else ("ok", sim.behaviour)
            else:
                subject = headers.get(b"x-renkei-subject", b"").decode("latin-1") or None
                key = headers.get(b"idempotency-key", b"").decode("latin-1") or None
                scope[_DECISION] = decision = sim.decide(subject, key)
            if decision[0] == "down":
                sim.failed += 1
                await _cut(send)
                return
        elif sim.behaviour.mode == "down":
            await _cut(send)
            return
        await self.app(scope, receive, send)


async def _cut(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]})
    raise SimulatedOutage


def _answer(verdict: Verdict) -> JSONResponse:
    return JSONResponse(verdict.body, status_code=verdict.status)


class _Checker:
    """Validation of one kind, plus the 中間サーバー rule; raises ValidationFailed."""

    def __init__(self, kind: str, catalog: Any, validate: Validate | None) -> None:
        self.kind = kind
        self._catalog = catalog
        self._validate = validate

    @property
    def catalog(self) -> Any:
        """The catalog validation uses (None with an injected validator that needs none)."""
        return self._resolve()[1]

    def check(self, raw: bytes, media: str, kind: str | None = None) -> Any:
        """Validate one body as `kind` (default: the system's); its record (when the validator
        gives one), else ValidationFailed."""
        from bus.validation.issues import Issue

        chukan = self.kind == "chukan.fukuhon"
        if chukan and has_personal_number(raw):
            raise ValidationFailed(
                [
                    Issue(
                        "S401",
                        "the intermediate server never takes a 個人番号 (personal_number)",
                        "personal_number",
                    )
                ]
            )
        validate, catalog = self._resolve()
        content_type = "application/xml"
        if media == "application/json":
            raw, content_type = self._json_to_xml(raw, catalog, kind or self.kind)
        result = validate(raw, content_type=content_type, kind=kind or self.kind, catalog=catalog)
        record = getattr(result, "record", None)
        if chukan and isinstance(record, dict):
            path = _personal_number_value(record)
            if path is not None:
                raise ValidationFailed(
                    [
                        Issue(
                            "S401",
                            "a value passing the 個人番号 check digit was sent to the intermediate server",
                            path,
                        )
                    ]
                )
        return record

    def _resolve(self) -> tuple[Validate, Any]:
        if self._validate is None:
            from bus.validation.validator import validate  # type: ignore[import-not-found,unused-ignore]

            self._validate = validate
        if self._catalog is None and _needs_catalog(self._validate):
            from bus.catalog import Catalog  # type: ignore[attr-defined,unused-ignore]

            self._catalog = Catalog.load()
        return self._validate, self._catalog

    def _json_to_xml(self, raw: bytes, catalog: Any, kind: str) -> tuple[bytes, str]:
        """JSON bodies are checked as the XML the kind's schema would have for them."""
        if catalog is None or not hasattr(catalog, "get"):
            return raw, "application/json"  # an injected validator decides
        from bus.validation.issues import Issue

        ks = catalog.get(kind)
        try:
            record = _typed(json.loads(raw), ks.fields, "")
        except ValidationFailed:
            raise
        except ValueError as exc:
            raise ValidationFailed([Issue("R200", f"not well-formed JSON ({type(exc).__name__})")]) from None
        try:
            xml: bytes = ks.to_xml(record)
        except Exception as exc:  # any failure means "does not fit the kind"
            msg = f"JSON body does not fit {kind} ({type(exc).__name__})"
            raise ValidationFailed([Issue("R301", msg)]) from None
        return xml, "application/xml"


def _typed(value: Any, fields: Any, path: str) -> dict[str, Any]:
    """A JSON object made into a record of the kind: ISO dates parsed, unknown keys refused."""
    from bus.validation.issues import Issue

    if not isinstance(value, dict):
        raise ValidationFailed([Issue("R300", "expected an object", path or "/")])
    known = {f.name: f for f in fields}
    unknown = [k for k in value if k not in known]
    if unknown:
        raise ValidationFailed([Issue("R300", "field not allowed here", f"{path}/{k}") for k in unknown])
    out: dict[str, Any] = {}
    for name, f in known.items():
        out[name] = _typed_value(value.get(name), f, f"{path}/{name}")
    return out


def _typed_value(v: Any, f: Any, path: str) -> Any:
    if v is None:
        return None
    if f.type == "record":
        return _typed(v, f.children, path)
    if f.type == "list" and isinstance(v, list) and f.item is not None:
        return [_typed_value(item, f.item, f"{path}[{i}]") for i, item in enumerate(v)]
    if f.type in ("date", "datetime") and isinstance(v, str):
        try:
            return date.fromisoformat(v) if f.type == "date" else datetime.fromisoformat(v)
        except ValueError:
            from bus.validation.issues import Issue

            raise ValidationFailed([Issue("R300", f"not an ISO 8601 {f.type}", path)]) from None
    return v


def _needs_catalog(validate: Validate) -> bool:
    return getattr(validate, "__module__", "") == "bus.validation.validator"


def has_personal_number(raw: bytes) -> bool:
    """True when an XML element or JSON field named personal_number appears in the body."""
    return re.search(rb"[<\"':]personal_number\b", raw) is not None


def personal_number_valid(digits: str) -> bool:
    """The 個人番号 check digit: weights 6,5,4,3,2,7,6,5,4,3,2; check = 0 if r ≤ 1 else 11 − r."""
    if not _TWELVE.match(digits):
        return False
    weights = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    r = sum(int(d) * w for d, w in zip(digits[:11], weights, strict=True)) % 11
    return int(digits[11]) == (0 if r <= 1 else 11 - r)


def _personal_number_value(record: dict[str, Any], prefix: str = "") -> str | None:
    for key, value in record.items():
        path = f"{prefix}/{key}"
        if isinstance(value, dict):
            found = _personal_number_value(value, path)
            if found:
                return found
        elif isinstance(value, str) and key not in _NUMERIC_IDS and personal_number_valid(value):
            return path
    return None
