"""One robust connection to RabbitMQ, over the nodes of a cluster, through aio-pika's public API.

A broker URL may list a cluster's nodes: ``amqp://user:pw@host1:5672,host2:5672/vhost``.
`open_connection` connects to the first node that answers; after a lost connection, aio-pika's
`RobustConnection` reconnects and restores the channels, QoS and consumers, and `_Failover`
(a close callback) points it at the next node first: aio-pika itself reconnects to its one
URL. Quorum queues live on every node, so a consumer resumes where the lost node left off;
what it had unacked is redelivered (sinks are idempotent).

`amqps://` URLs use TLS: aiormq reads `cafile`, `certfile`, `keyfile` and `no_verify_ssl`
from the URL query, or pass an `ssl_context` (bus.tls.broker_context).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from ssl import SSLContext
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractRobustConnection
from yarl import URL

from bus.brokers.amqp.errors import mapped, safe_url
from bus.errors import BrokerUnavailable

__all__ = ["Link", "close_connection", "node_urls", "open_connection"]

log = structlog.get_logger(__name__)


class _RaisedAnyway(logging.Filter):
    """aiormq logs a failed connect at ERROR and then raises it; renkei reports the raise (a
    BrokerUnavailable, its URL's password masked), so the log line was a stray duplicate printed
    before the clean error of every command. Other aiormq records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error when creating transport")


logging.getLogger("aiormq.connection").addFilter(_RaisedAnyway())


def node_urls(url: str) -> list[str]:
    """One URL per node of ``amqp://user:pw@h1:p1,h2:p2/vhost?query`` (a single-node URL as it is)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    credentials, at, hosts = authority.rpartition("@")
    return [f"{scheme}{sep}{credentials}{at}{host.strip()}{slash}{path}" for host in hosts.split(",") if host.strip()]


class _Failover:
    """A close callback that points a robust connection at the next node before it reconnects
    (aio-pika calls the close callbacks first, then reconnects to `connection.url`)."""

    def __init__(self, nodes: Sequence[str], *, brief: bool = False) -> None:
        self.nodes = [URL(u) for u in nodes]
        self.node = 0
        self.closing = False  # closed by renkei: no reconnect follows
        #: a connection opened for one look (`renkei status`, a /readyz probe): its loss is no
        #: bus's failover, so it is told at debug level, not as a warning an operator reads as one
        self.brief = brief

    def __call__(self, connection: AbstractConnection | None, exc: BaseException | None = None) -> None:
        if self.closing or len(self.nodes) < 2 or not isinstance(connection, aio_pika.RobustConnection):
            return
        self.node = (self.node + 1) % len(self.nodes)
        connection.url = self.nodes[self.node]
        say = log.debug if self.brief else log.warning
        say("broker connection lost; reconnecting to the next node", node=safe_url(str(connection.url)))


async def open_connection(url: str, *, name: str, connect_within: float, ssl_context: SSLContext | None = None,
                          brief: bool = False, **kwargs: Any) -> AbstractRobustConnection:
    """A robust connection to the first node of `url` that answers (BrokerUnavailable when none
    does within `connect_within` seconds); `name` is its name in RabbitMQ's management UI."""
    nodes = node_urls(url)
    for n in range(len(nodes)):
        order = nodes[n:] + nodes[:n]
        failover = _Failover(order, brief=brief)
        connection = aio_pika.RobustConnection(URL(order[0]), ssl_context=ssl_context,
                                               client_properties={"connection_name": name}, **kwargs)
        try:
            with mapped(f"connecting to {safe_url(order[0])}"):
                await connection.connect(timeout=connect_within)
        except BrokerUnavailable:
            if n == len(nodes) - 1:
                raise
            log.warning("broker node unreachable; trying the next", node=safe_url(order[0]))
            continue
        # only now: added before, a first connect that failed ran it too, and every short-lived
        # connection (`renkei status`, a process's periodic report) to a cluster with a dead first
        # node logged "broker connection lost" — which read as a connection flapping
        connection.close_callbacks.add(failover)
        return connection
    raise BrokerUnavailable(f"no node in {safe_url(url)}")


async def close_connection(connection: AbstractRobustConnection) -> None:
    """Close `connection` for good (no failover, no reconnect)."""
    for callback in list(connection.close_callbacks):
        if isinstance(callback, _Failover):
            callback.closing = True
    with mapped("closing the connection"):
        await connection.close()


class Link:
    """A broker's connection (opened by `open`) and the short-lived channels it declares on."""

    def __init__(self, url: str, *, name: str, timeout: float, ssl_context: SSLContext | None = None) -> None:
        self.url, self.name, self.timeout, self.ssl_context = url, name, timeout, ssl_context
        self._connection: AbstractRobustConnection | None = None

    async def open(self, *, brief: bool = False) -> None:
        """Connect (`brief`: for one look, closed right after; its loss is logged at debug level)."""
        if self._connection is None:
            self._connection = await open_connection(self.url, name=self.name, connect_within=self.timeout,
                                                     ssl_context=self.ssl_context, brief=brief)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await close_connection(connection)

    def connection(self) -> AbstractRobustConnection:
        """The open connection (BrokerUnavailable before `open()` or after `close()`)."""
        if self._connection is None:
            raise BrokerUnavailable(f"not connected to {safe_url(self.url)} (call connect())")
        return self._connection

    @asynccontextmanager
    async def admin_channel(self, *, confirms: bool = False) -> AsyncIterator[AbstractChannel]:
        """A short-lived channel for declares: a failed one closes it, not the publisher.

        Closing it is best effort and never replaces what is already on its way out (aio-pika's
        own ``async with channel`` would raise on a lost connection, turning a cancellation
        into a BrokerUnavailable that a retrying loop never stops on)."""
        with mapped("opening a channel"):
            channel = self.connection().channel(publisher_confirms=confirms, on_return_raises=confirms)
            await channel.initialize()
        try:
            yield channel
        finally:
            try:
                await channel.close()
            except Exception as exc:  # the connection is gone, and the channel with it
                log.debug("admin channel close failed", error=f"{type(exc).__name__}: {exc}")
