"""A renkei message as it travels through RabbitMQ: its headers and properties on the way
out, a `Delivery` on the way in.

- The message's headers (the envelope) travel as one JSON object in `ENVELOPE_HEADER`:
  pamqp encodes and decodes a header table in Python, and the 14 entries of a routed
  envelope cost ~50 µs a publish that way.
- The ordering key has its own header, `KEY_HEADER`, which a sharded queue's
  consistent-hash exchange hashes (topology.py).
- Every message is persistent and carries its message id.
- `delivery_count` comes from the quorum queue's `x-delivery-count` header (+1); the
  ordering key, the delivery count and RabbitMQ's dead-lettering record are removed from
  the headers a handler sees.
"""

from __future__ import annotations

from typing import Any

import aio_pika
import aiormq
import orjson
from aio_pika.abc import AbstractIncomingMessage

from bus.brokers.base import Delivery, OutgoingMessage

__all__ = ["DUE_HEADER", "ENVELOPE_HEADER", "KEY_HEADER", "delivery", "properties", "text", "unpack", "wire_headers"]

KEY_HEADER = "x-renkei-key"
ENVELOPE_HEADER = "x-renkei-envelope"  # the message's headers (the envelope), as one JSON object
DUE_HEADER = "x-renkei-due"  # a retry's due time (epoch seconds, as text) while it waits in a wait queue (waiting.py)
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)

#: RabbitMQ's own dead-lettering record, added when a message comes back from a delay queue:
#: `x-death` is a list of tables holding timestamps, not JSON (the contract's header values are)
_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-")


def wire_headers(message: OutgoingMessage, due: float | None = None) -> dict[str, Any]:
    """The AMQP headers of a renkei publish: the envelope as one JSON header, and the key (and
    the due time of a delayed publish)."""
    headers = {ENVELOPE_HEADER: orjson.dumps(message.headers).decode(), KEY_HEADER: message.key}
    if due is not None:
        headers[DUE_HEADER] = f"{due:.3f}"  # a string: the fast path writes header tables of strings
    return headers


def properties(message: OutgoingMessage, due: float | None = None) -> aiormq.spec.Basic.Properties:
    """The basic properties of a renkei publish (persistent, its id, `wire_headers`)."""
    return aiormq.spec.Basic.Properties(message_id=message.message_id, headers=wire_headers(message, due),
                                        delivery_mode=PERSISTENT)


def delivery(message: AbstractIncomingMessage, token: Any) -> Delivery:
    """The `Delivery` a handler gets for `message`; `token` is the consumer's handle."""
    headers = dict(message.headers or {})
    packed = headers.pop(ENVELOPE_HEADER, None)
    if packed is not None:  # renkei's own publish; other publishers (vendors' kombu) send plain headers
        headers.update(_unpack(packed))
    key = _text(headers.pop(KEY_HEADER, ""))
    returned = headers.pop("x-delivery-count", None)
    headers.pop(DUE_HEADER, None)
    count = int(returned) + 1 if isinstance(returned, int) else (2 if message.redelivered else 1)
    return Delivery(
        body=message.body,
        message_id=message.message_id or "",
        key=key,
        headers={k: _text(v) for k, v in headers.items() if not k.startswith(_DEATH_HEADERS)},
        redelivered=bool(message.redelivered) or count > 1,
        delivery_count=count,
        token=token,
    )


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _unpack(packed: Any) -> dict[str, Any]:
    """The headers packed by `wire_headers`. Anything else is kept as it came (as text), so
    the handler fails on the missing envelope and the message takes the poison path to the
    dead letters, where an operator can see it; raising here would leave it unacked."""
    try:
        value = orjson.loads(packed)
    except (TypeError, ValueError):
        value = None
    return value if isinstance(value, dict) else {ENVELOPE_HEADER: str(_text(packed))[:1000]}


#: for the broker's `expedite`, which reads the headers of messages it moved (broker.py)
text, unpack = _text, _unpack
