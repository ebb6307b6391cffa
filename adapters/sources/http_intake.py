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
    401 no or unknown token (WWW-Authenticate: Bearer); the body is not read
    403 the token's source may not submit for the message's municipality (or names another
        source); the message is not kept
    503 the broker is unavailable: try again (Retry-After)
    GET /healthz                 200 {"status": "ok"}

The app only talks to a `bus.ports.Intake` (the bus wires its intake stage) and a
`bus.ports.Gatekeeper` (the bus's tenant gate) that checks tokens and audits every refusal
(`auth_failed`, `forbidden`). `HttpIntake` is the app as a bus source (bus.ports.Source).
Without configured sources the intake is open (development only: `renkei run` says so).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.server import EmbeddedServer
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
log = structlog.get_logger("renkei.intake.http")


async def read_limited_body(request: Request, limit: int) -> bytes:
    """Read a request body, stopping as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_intake_app(intake: Intake, *, max_body: int = MAX_BODY, default_source: str = "http",
                      gate: Gatekeeper | None = None) -> Starlette:
    """The intake ASGI app around one `Intake`; with a `gate` that enforces sources, every
    request needs a source's bearer token."""

    async def submit(request: Request) -> JSONResponse:
        claimed = request.headers.get("x-renkei-source")
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
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        content_type = CONTENT_TYPES.get(media)
        if content_type is None:
            return _refused(source, 415, "R220", "content type must be application/xml or application/avro",
                            f", got {media!r}")
        try:
            raw = await read_limited_body(request, max_body)
        except BodyTooLarge:
            return _refused(source, 413, "R100", f"message larger than {max_body} bytes")
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
        status = {"accepted": 202, "duplicate": 200, "rejected": 422}[result.status]
        return JSONResponse(_answer(result), status_code=status)

    def _refused(source: str, status: int, code: str, message: str, detail: str = "") -> JSONResponse:
        if gate is not None:  # the source's rejection (renkei status), audited without the caller's text
            gate.unreadable(source, code, message)
        return _problem(status, code, message + detail)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/messages", submit, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


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
                 where: str | None = None) -> None:
        self.host, self.port, self.max_body, self.tls, self.where = host, port, max_body, tls, where
        self.url: str | None = None

    @contextlib.asynccontextmanager
    async def open(self, intake: Intake, gate: Gatekeeper) -> AsyncIterator[None]:
        server = EmbeddedServer(create_intake_app(intake, max_body=self.max_body, gate=gate),
                                host=self.host, port=self.port, tls=self.tls)
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
