"""AMQP intake: vendor code publishes into its municipality's vhost; the bus takes it in.

::

    vhost renkei-131016                         vhost renkei-271004
      queue renkei.submit  ◀── vendor of 131016    queue renkei.submit  ◀── vendor of 271004
            │ (user jumin-131016: write only)            │
            └──────────── AmqpIntake (user renkei-bus) ──┴──▶ IntakeStage.submit ─▶ renkei.intake

A vendor publishes one message per AMQP message to the default exchange, routing key
``renkei.submit``, with ``user_id`` set to its broker user (RabbitMQ refuses a ``user_id``
that is not the connection's user, so it names the publisher truthfully), ``content_type``
``application/xml`` or ``application/avro`` and, for Avro, a ``kind`` header. With
``reply_to`` (and ``correlation_id``) it gets the bus's answer as JSON:
``{"status": "accepted" | "duplicate" | "rejected" | "forbidden" | "unauthorized", ...}``.

The broker does the first half of tenancy: a vendor's user has permissions in its own
municipality's vhost only (scripts/rabbitmq.sh `user`), so its credentials cannot even open
another municipality's vhost. The bus does the second half: the `user_id` must be a
configured source's `amqp_user` (else `auth_failed`), the vhost's municipality must be one
of the source's, and so must the change's (else `forbidden`) — both audited.

A message is acked after the bus answered (accepted means durable in the bus's intake
queue); when the bus's broker is unavailable it is requeued for a later try.

Its connection, queue and errors are the bus broker's (bus.brokers.amqp): the same failover
over a cluster's nodes, the same queue arguments (a quorum queue with a single active
consumer, so several bus processes take a vhost's submissions in order, one at a time), and
every driver error mapped to a `BrokerError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from ssl import SSLContext
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from bus.brokers.amqp import close_connection, mapped, open_connection, queue_arguments
from bus.errors import AuthenticationFailed, BrokerError, SourceForbidden, SourceRefused
from bus.ports import Gatekeeper, Intake
from bus.topology import SUBMIT_QUEUE

__all__ = ["SUBMIT_QUEUE", "AmqpIntake", "vhost_url"]

log = structlog.get_logger("renkei.intake.amqp")


def vhost_url(url: str, vhost: str) -> str:
    """`url` (amqp:// or amqps://, with the bus's credentials) pointed at `vhost`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, ""))


class AmqpIntake:
    """Consumes one municipality's submission queue (in its vhost) into the bus's intake."""

    def __init__(self, url: str, municipality: str, intake: Intake, gate: Gatekeeper, *, queue: str = SUBMIT_QUEUE,
                 ssl_context: SSLContext | None = None, prefetch: int = 16) -> None:
        self.url = url
        self.municipality = municipality
        self.intake = intake
        self.gate = gate
        self.queue = queue
        self.ssl_context = ssl_context
        self.prefetch = prefetch
        self.vhost = urlsplit(url).path.lstrip("/") or "/"
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None

    async def start(self) -> None:
        try:
            self._connection = await open_connection(self.url, name=f"renkei-intake-{self.municipality}",
                                                     connect_within=10, ssl_context=self.ssl_context)
            with mapped(f"AMQP intake of {self.municipality} (vhost {self.vhost}): consuming queue {self.queue!r}"):
                self._channel = await self._connection.channel()
                await self._channel.set_qos(prefetch_count=self.prefetch)
                queue = await self._channel.declare_queue(self.queue, durable=True, arguments=queue_arguments())
                await queue.consume(self._on_message)
        except BaseException:
            with contextlib.suppress(BrokerError):  # what went wrong first is the error to see
                await self.stop()
            raise
        log.info("amqp intake consuming", municipality=self.municipality, vhost=self.vhost, queue=self.queue)

    async def stop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            await close_connection(connection)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            answer = await self._answer(message)
        except BrokerError as exc:  # the bus cannot accept now: the message waits in the queue
            log.warning("amqp intake: bus unavailable, requeueing", vhost=self.vhost, error=type(exc).__name__)
            await asyncio.sleep(1.0)
            await self._settle(message, ok=False)
            return
        await self._reply(message, answer)
        await self._settle(message, ok=True)

    async def _settle(self, message: AbstractIncomingMessage, *, ok: bool) -> None:
        """Ack or requeue; one lost with the connection is redelivered (and answered again)."""
        try:
            with mapped(f"{'acking' if ok else 'requeueing'} a submission in vhost {self.vhost}"):
                await (message.ack() if ok else message.nack(requeue=True))
        except BrokerError as exc:
            log.info("amqp intake: not settled, it comes back", vhost=self.vhost, error=str(exc))

    async def _answer(self, message: AbstractIncomingMessage) -> dict[str, Any]:
        channel = f"amqp:{self.vhost}"
        try:
            source = self.gate.authenticate_user(message.user_id, channel=channel)
            if self.gate.enforced and not source.may_submit_for(self.municipality):
                refusal = SourceForbidden(source.id, self.municipality, f"source {source.id!r} may not publish "
                                          f"into the intake of municipality {self.municipality}")
                self.gate.forbidden(refusal)
                raise refusal
            kind = message.headers.get("kind") if message.headers else None
            result = await self.intake.submit(message.body, content_type=message.content_type or "",
                                              source=source.id, kind=str(kind) if kind else None)
        except AuthenticationFailed as failed:
            return {"status": "unauthorized", "code": failed.code, "reason": str(failed)}
        except SourceRefused as refusal:
            return {"status": "forbidden", "code": refusal.code, "reason": str(refusal)}
        body = result.to_dict()
        if result.status != "rejected":
            body.pop("issues", None)
        return body

    async def _reply(self, message: AbstractIncomingMessage, answer: dict[str, Any]) -> None:
        if not message.reply_to or self._channel is None:
            return
        reply = aio_pika.Message(json.dumps(answer, ensure_ascii=False).encode(), content_type="application/json",
                                 correlation_id=message.correlation_id)
        try:
            with mapped(f"replying to a submission in vhost {self.vhost}"):
                await self._channel.default_exchange.publish(reply, routing_key=message.reply_to)
        except BrokerError as exc:  # the publisher went away; its message was still answered in the trail
            log.info("amqp intake: reply not delivered", vhost=self.vhost, error=type(exc).__name__)


class AmqpIntakeSource:
    """One municipality's AMQP intake as a bus source (bus.ports.Source): consumes its
    submission queue while open. A broker it cannot reach is a BrokerError on entry."""

    name = "amqp"

    def __init__(self, url: str, municipality: str, *, queue: str = SUBMIT_QUEUE,
                 ssl_context: SSLContext | None = None) -> None:
        self.url, self.municipality, self.queue, self.ssl_context = url, municipality, queue, ssl_context

    @contextlib.asynccontextmanager
    async def open(self, intake: Intake, gate: Gatekeeper) -> AsyncIterator[None]:
        consumer = AmqpIntake(self.url, self.municipality, intake, gate, queue=self.queue,
                              ssl_context=self.ssl_context)
        await consumer.start()
        try:
            yield
        finally:
            await consumer.stop()
