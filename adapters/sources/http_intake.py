"""HTTP intake: the bus's front door for systems that push messages over HTTP.

::

    POST /v1/messages            body: one message (application/xml or application/avro)
         ?kind=jumin.idou        or header X-Renkei-Kind (optional: XML names its kind)
         Authorization: Bearer <token>   the source's token, when sources are configured
         X-Renkei-Source: kiban  which system sends (default "http"; with tokens: the token's
                                 source, and a different value is refused)

    202 {"status": "accepted", "message_id": ...}   only after the broker confirmed it
    200 {"status": "duplicate", "message_id": ...}  the same change was sent before
    422 {"status": "rejected", "issues": [...]}     with every problem found (values masked)
    413 body over the cap (read with the cap: never buffered beyond it)
    415 other content types
    400 a malformed X-Renkei-Source (not a source name); audited `forbidden`
    408 the body did not arrive within `body_timeout` seconds (the connection is closed)
    503 more than `max_connections` connections at once (uvicorn's limit_concurrency)
    401 no or unknown token (WWW-Authenticate: Bearer); the body is not read
    403 the token's source may not submit for the message's municipality (or names another
        source); the message is not kept
    503 the broker is unavailable: try again (Retry-After)
    GET /healthz                 200 {"status": "ok"}
    GET /metrics, /readyz        with `probes` (`renkei run`: bus.console.probes)

The app only talks to a `bus.ports.Intake` (the bus wires its intake stage) and a
`bus.ports.Gatekeeper` (the bus's tenant gate) that checks tokens and audits every refusal
(`auth_failed`, `forbidden`). `HttpIntake` is the app as a bus source (bus.ports.Source).
Without configured sources the intake is open (development only: `renkei run` says so).

Every refusal of a request that names a source is audited: 413, 415 and a malformed `kind`
(a space, CR/LF, anything but a kind name) go to the intake like any message and come back
rejected (R100, R220) with a `rejected` event; a malformed source claim is a `forbidden` one.
Hostile clients: the request head must arrive within `header_timeout` seconds and the body
within `body_timeout` (else the connection is closed), at most `max_connections` are served
at once, and a client that disconnects mid-body is logged in one line (no traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from adapters.server import EmbeddedServer
from adapters.sources.http_files import take_file
from bus.errors import AuthenticationFailed, BodyTooLarge, BrokerError, ConfigError, SourceForbidden
from bus.ports import Gatekeeper, Intake, Submission
from bus.validation.issues import Issue

__all__ = ["CONTENT_TYPES", "MAX_BODY", "BodyTooLarge", "create_intake_app", "read_limited_body"]

MAX_BODY = 1024 * 1024
CONTENT_TYPES = {
    "application/xml": "application/xml",
    "text/xml": "application/xml",
    "application/avro": "application/avro",
    "avro/binary": "application/avro",
}
BODY_TIMEOUT = 30.0
HEADER_TIMEOUT = 10.0
MAX_CONNECTIONS = 100
_SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,99}")
log = structlog.get_logger("renkei.intake.http")


async def read_limited_body(request: Request, limit: int) -> bytes:
    """Read a request body, stopping as soon as it passes `limit` bytes (BodyTooLarge, with the
    first `limit` + 1 bytes read as `partial`)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        chunks.append(chunk)
        if size > limit:
            raise _TooLarge(b"".join(chunks)[: limit + 1])
    return b"".join(chunks)


class _TooLarge(BodyTooLarge):
    def __init__(self, partial: bytes) -> None:
        super().__init__(f"body larger than {len(partial) - 1} bytes")
        self.partial = partial  # the first limit + 1 bytes: the intake rejects them (R100)


def create_intake_app(intake: Intake, *, max_body: int = MAX_BODY, default_source: str = "http",
                      gate: Gatekeeper | None = None, body_timeout: float | None = BODY_TIMEOUT,
                      catalog: Any = None, max_file: int = 64 * MAX_BODY,
                      probes: Sequence[BaseRoute] = ()) -> Starlette:
    """The intake ASGI app around one `Intake`; with a `gate` that enforces sources, every
    request needs a source's bearer token. With a `catalog` it also takes files of the
    file-linkage layout at `/v1/files` (adapters.sources.http_files). `probes`: more routes,
    served without a token (the bus process's /metrics and /readyz; /healthz stays this app's)."""

    async def submit(request: Request) -> Response:
        try:
            return await _submit(request)
        except ClientDisconnect:  # gone mid-body: nothing to answer, nothing kept
            log.info("intake.client_disconnected", peer=request.client.host if request.client else None)
            return Response(status_code=400)

    async def _caller(request: Request) -> str | Response:
        """The source of the request, or the answer that refuses it (before the body is read)."""
        claimed = request.headers.get("x-renkei-source")
        if claimed is not None and not _SOURCE_NAME.fullmatch(claimed):
            message = "X-Renkei-Source must be a source name (letters, digits and . _ : @ + -, at most 100)"
            if gate is not None:
                gate.forbidden(SourceForbidden(default_source, None, "a malformed X-Renkei-Source was refused"))
            return _problem(400, "A400", message, answer="forbidden")
        source = claimed or default_source
        if gate is not None and gate.enforced:  # before anything of the request is read
            peer = request.client.host if request.client else None
            try:
                source = gate.authenticate_token(request.headers.get("authorization"), peer=peer).id
            except AuthenticationFailed as failed:
                challenge = 'Bearer realm="renkei"'  # RFC 6750 §3: an error code only when a token was sent
                if request.headers.get("authorization"):
                    challenge += ', error="invalid_token"'
                return _problem(401, "A401", f"authentication failed: {failed}", answer="unauthorized",
                                headers={"WWW-Authenticate": challenge})
            if claimed and claimed != source:
                refusal = SourceForbidden(source, None, f"the token is of source {source!r}, not {claimed!r}")
                gate.forbidden(refusal)
                return _problem(403, "A403", str(refusal), answer="forbidden")
        return source

    async def _submit(request: Request) -> Response:
        source = await _caller(request)
        if isinstance(source, Response):
            return source
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        content_type = CONTENT_TYPES.get(media)
        status_if_rejected = 422
        if content_type is None:  # the intake rejects it (R220) and audits the rejection
            content_type, status_if_rejected = media or "none", 415
        try:
            async with asyncio.timeout(body_timeout):
                raw = await read_limited_body(request, max_body)
        except _TooLarge as large:  # the intake rejects it (R100) and audits the rejection
            raw, status_if_rejected = large.partial, 413
        except TimeoutError:
            log.info("intake.body_timeout", source=source, seconds=body_timeout)
            return _problem(408, "R100", f"the body did not arrive within {body_timeout:g} s",
                            headers={"Connection": "close"})
        kind = request.query_params.get("kind") or request.headers.get("x-renkei-kind") or None
        try:
            result = await intake.submit(raw, content_type=content_type, source=source, kind=kind)
        except SourceForbidden as refusal:  # audited by the intake
            log.info("intake.forbidden", source=source, municipality=refusal.municipality)
            return _problem(403, "A403", str(refusal), answer="forbidden")
        except BrokerError as exc:
            log.warning("intake.broker_unavailable", source=source, error=type(exc).__name__)
            body = {"status": "unavailable", "reason": "the bus cannot accept messages now; retry later"}
            return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
        log.info("intake.submitted", source=source, status=result.status, message_id=result.message_id)
        status = {"accepted": 202, "duplicate": 200, "rejected": status_if_rejected}[result.status]
        return JSONResponse(_answer(result), status_code=status)

    async def submit_file(request: Request) -> Response:
        try:
            source = await _caller(request)
            if isinstance(source, Response):
                return source
            media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "text/csv":
                return _problem(415, "R220", f"a file must be text/csv in the file-linkage layout, got {media!r}")
            try:
                async with asyncio.timeout(body_timeout):
                    raw = await read_limited_body(request, max_file)
            except _TooLarge:
                return _problem(413, "R100", f"the file is larger than {max_file} bytes: split it")
            except TimeoutError:
                return _problem(408, "R100", f"the file did not arrive within {body_timeout:g} s",
                                headers={"Connection": "close"})
            kind = request.query_params.get("kind") or request.headers.get("x-renkei-kind") or "jumin.idou"
            status, body = await take_file(raw, intake, source, catalog, kind)
            return JSONResponse(body, status_code=status)
        except ClientDisconnect:
            log.info("intake.client_disconnected", peer=request.client.host if request.client else None)
            return Response(status_code=400)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    routes = [Route("/v1/messages", submit, methods=["POST"]), Route("/healthz", healthz, methods=["GET"]), *probes]
    if catalog is not None:
        routes.append(Route("/v1/files", submit_file, methods=["POST"]))
    return Starlette(routes=routes)


def _answer(result: Submission) -> dict[str, Any]:
    body = result.to_dict()
    if result.status != "rejected":
        body.pop("issues", None)
    return body


def _problem(status: int, code: str, message: str, *, answer: str = "rejected",
             headers: dict[str, str] | None = None) -> JSONResponse:
    issue = Issue(code=code, message=message)
    return JSONResponse({"status": answer, "issues": [issue.to_dict()]}, status_code=status, headers=headers)


class HttpIntake:
    """The HTTP intake as a bus source (bus.ports.Source): serves `create_intake_app` on
    `host:port` (https with `tls` = (cert file, key file)) while open. A port it cannot
    listen on is a ConfigError naming `where` (the config file), raised before the bus
    delivers anything."""

    name = "http"

    def __init__(self, host: str, port: int, *, max_body: int = MAX_BODY, tls: tuple[str, str] | None = None,
                 where: str | None = None, header_timeout: float = HEADER_TIMEOUT,
                 body_timeout: float = BODY_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                 catalog: Any = None, probes: Sequence[BaseRoute] = ()) -> None:
        self.host, self.port, self.max_body, self.tls, self.where = host, port, max_body, tls, where
        self.catalog, self.probes = catalog, probes
        self.header_timeout, self.body_timeout, self.max_connections = header_timeout, body_timeout, max_connections
        self.url: str | None = None

    @contextlib.asynccontextmanager
    async def open(self, intake: Intake, gate: Gatekeeper) -> AsyncIterator[None]:
        app = create_intake_app(intake, max_body=self.max_body, gate=gate, body_timeout=self.body_timeout,
                                catalog=self.catalog, probes=self.probes)
        server = EmbeddedServer(app, host=self.host, port=self.port, tls=self.tls,
                                header_timeout=self.header_timeout, max_connections=self.max_connections)
        try:
            await server.start()
        except OSError as exc:
            raise ConfigError(f"[intake] cannot listen on {self.host}:{self.port} ({exc.strerror or exc}): "
                              "choose another http_port", where=self.where) from exc
        self.url = f"{server.url}/v1/messages"
        try:
            yield
        finally:
            await server.stop()
