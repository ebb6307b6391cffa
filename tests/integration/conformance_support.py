"""Deliberately broken receiving systems (test-only): the real simulator with one defect each.

Each variant is the simulator app of `system` wrapped in a middleware that breaks one rule
of docs/delivery-contract.md, served by uvicorn on a loopback port like the real ones.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.simulators import ReceivedMessage, SimulatorState, create_app
from adapters.transports.httpbatch import BATCH_CONTENT_TYPE

CallNext = Callable[[Request], Awaitable[Response]]
Dispatch = Callable[[Request, CallNext, SimulatorState], Awaitable[Response]]


def _messages(request: Request) -> bool:
    return request.url.path == "/messages" and request.method == "POST"


async def no_idempotency(request: Request, call_next: CallNext, sim: SimulatorState) -> Response:
    """Ignores the key: every request is a new effect (it keys on a counter of its own)."""
    if _messages(request):
        headers = [(k, v) for k, v in request.scope["headers"] if k != b"idempotency-key"]
        if any(k == b"idempotency-key" for k, _ in request.scope["headers"]):
            headers.append((b"idempotency-key", f"own-{sim.requests}".encode()))
        request.scope["headers"] = headers
    return await call_next(request)


async def refuses_duplicates(request: Request, call_next: CallNext, sim: SimulatorState) -> Response:
    """Answers a resend 400 "already received" (the bus would dead-letter a change it holds)."""
    before = sim.duplicates
    response = await call_next(request)
    if _messages(request) and sim.duplicates > before:
        return JSONResponse({"status": "rejected", "issues": [{"code": "X409", "message": "already received"}]},
                            status_code=400)
    return response


async def server_error_for_bad_input(request: Request, call_next: CallNext, sim: SimulatorState) -> Response:
    """Answers 500 where it should refuse for good (the bus would retry it for a day)."""
    response = await call_next(request)
    if _messages(request) and 400 <= response.status_code < 500:
        return JSONResponse({"status": "failed"}, status_code=500)
    return response


async def reorders(request: Request, call_next: CallNext, sim: SimulatorState) -> Response:
    """Answers 2xx at once and applies later, from a queue that lets sequence 2 wait."""
    sequence = request.headers.get("x-renkei-sequence", "")
    if not (_messages(request) and sequence == "2"):
        return await call_next(request)
    body = await request.body()
    key = request.headers["idempotency-key"]
    message = ReceivedMessage(key=key, message_id=request.headers.get("x-renkei-message-id", key),
                              kind=sim.kind, municipality=request.headers.get("x-renkei-municipality", ""),
                              subject=request.headers.get("x-renkei-subject", ""), sequence=2,
                              content_type="application/xml", body=body, reference="late")

    async def later() -> None:
        await asyncio.sleep(0.5)
        sim.accept(message)

    _background.add(task := asyncio.get_running_loop().create_task(later()))
    task.add_done_callback(_background.discard)
    return JSONResponse({"status": "applied", "key": key, "reference": "queued"})


_background: set[asyncio.Task[None]] = set()


def broken_app(system: str, dispatch: Dispatch, catalog: Any) -> Starlette:
    """The simulator of `system` with `dispatch` in front of it."""
    app = create_app(system, catalog=catalog)
    sim: SimulatorState = app.state.simulator

    async def run(request: Request, call_next: CallNext) -> Response:
        return await dispatch(request, call_next, sim)

    app.add_middleware(BaseHTTPMiddleware, dispatch=run)
    return app


def accepts_everything(raw: bytes, *, content_type: str, kind: str | None, catalog: Any = None) -> Any:
    """A validator that checks nothing: the simulator then applies malformed bodies."""

    return SimpleNamespace(record={})


async def without_readback_or_control(request: Request, call_next: CallNext, sim: SimulatorState) -> Response:
    """A correct receiver that offers neither GET /received nor /control (as most vendors' won't)."""
    if request.url.path in ("/received", "/control"):
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    return await call_next(request)


async def refuses_long_values(request: Request, call_next: CallNext, sim: SimulatorState) -> Response:
    """A column too narrow (VARCHAR(50)): any text over 50 characters is refused."""
    if _messages(request):
        body = (await request.body()).decode("utf-8", "replace")
        if re.search(r">[^<]{51,}<", body):
            return JSONResponse({"status": "rejected", "issues": [{"code": "X413", "message": "too long"}]},
                                status_code=422)
    return await call_next(request)


async def refuses_whole_batches(request: Request, call_next: CallNext, sim: SimulatorState) -> Response:
    """Takes a batch all or nothing: one refused item and the whole request is answered 422 (the bus
    would dead-letter every change of the batch)."""
    response = await call_next(request)
    if not (_messages(request) and request.headers.get("content-type", "").startswith(BATCH_CONTENT_TYPE)):
        return response
    body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
    if any(item.get("status") == "rejected" for item in json.loads(body).get("items", [])):
        return JSONResponse({"status": "rejected", "issues": [{"code": "X422", "message": "batch refused"}]},
                            status_code=422)
    return Response(body, status_code=response.status_code, media_type="application/json")
