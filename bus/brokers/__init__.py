"""Brokers: one contract (`base.Broker`), a module per backend.

`open_broker(url)` picks the backend from the URL (kombu's transport aliases, as data):
no URL or `sqlite:///path` → the embedded SQLite broker; `amqp://` / `amqps://` → RabbitMQ.
The broker is returned unconnected: `await broker.connect()`.
"""

from __future__ import annotations

from pathlib import Path
from ssl import SSLContext
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from bus.brokers.base import Broker, Consumer, Delivery, Handler, OutgoingMessage, QueueStats
from bus.errors import ConfigError
from bus.topology import StateDir

if TYPE_CHECKING:
    from bus.settings import Settings

__all__ = [
    "Broker",
    "Consumer",
    "Delivery",
    "Handler",
    "OutgoingMessage",
    "QueueStats",
    "broker_for",
    "broker_tls",
    "open_broker",
]

DEFAULT_FILE = Path("var/broker.sqlite")


def open_broker(url: str | None, *, path: Path | None = None, ssl_context: SSLContext | None = None) -> Broker:
    """The broker for `url`; `path` is the embedded broker's file when no URL is given;
    `ssl_context` is used for an amqps:// URL (bus.tls.broker_context)."""
    if not url:
        from bus.brokers.embedded import EmbeddedBroker

        return EmbeddedBroker(path or DEFAULT_FILE)
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from bus.brokers.embedded import EmbeddedBroker

        return EmbeddedBroker(_sqlite_path(url))
    if scheme in ("amqp", "amqps"):
        from bus.brokers.amqp import AmqpBroker

        return AmqpBroker(url, ssl_context=ssl_context if scheme == "amqps" else None)
    raise ConfigError(
        f"unknown broker URL scheme {scheme!r}: use amqp://, amqps://, sqlite:///path, or no URL "
        "for the embedded broker",
        where="broker_url",
    )


def broker_for(settings: Settings) -> Broker:
    """The broker `settings` configure, unconnected: URL (or the embedded file in state_dir),
    TLS for amqps:// ([bus] broker_ca_file …), shards and the AMQP fast path, the embedded broker's sync,
    inline writes and doorbell.
    Every command opens it this way."""
    bus = settings.bus
    url = bus.broker_url
    if url and urlsplit(url).scheme.lower() in ("amqp", "amqps"):
        from bus.brokers.amqp import AmqpBroker

        return AmqpBroker(url, ssl_context=broker_tls(settings), shards=bus.shards, fast_path=bus.amqp_fast_path)
    from bus.brokers.embedded import EmbeddedBroker

    broker = open_broker(url, path=StateDir(bus.state_dir).broker_file)
    if isinstance(broker, EmbeddedBroker):
        broker.sync = settings.batching.embedded_sync
        broker.inline_writes = settings.batching.inline_for(embedded=True)
        broker.doorbell = settings.batching.embedded_doorbell
    return broker


def broker_tls(settings: Settings) -> SSLContext | None:
    """The TLS context of an amqps:// broker URL ([bus] broker_ca_file …), else None."""
    bus = settings.bus
    if not (bus.broker_url or "").lower().startswith("amqps:"):
        return None
    from bus.tls import broker_context

    return broker_context(bus.broker_ca_file, bus.broker_cert_file, bus.broker_key_file)


def _sqlite_path(url: str) -> Path:
    """sqlite:///relative/file or sqlite:////absolute/file (SQLAlchemy's convention)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"sqlite URL {url!r} names a host; the embedded broker is a local file",
                          where="broker_url")
    raw = unquote(parts.path)
    if not raw or raw == "/":
        raise ConfigError(f"sqlite URL {url!r} has no file path (sqlite:///var/broker.sqlite)",
                          where="broker_url")
    return Path(raw[1:])  # one slash separates the authority; the rest is the path
