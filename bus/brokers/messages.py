"""What goes through a broker (bus/brokers/base.py re-exports these): a message published, a
delivery handed to a handler, and the handlers' shapes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchHandler", "Delivery", "Handler", "OutgoingMessage"]


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    body: bytes
    message_id: str
    key: str  # ordering key (the envelope subject)
    headers: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Delivery:
    """One message handed to a handler. The broker acks or requeues it; handlers don't."""

    body: bytes
    message_id: str
    key: str
    headers: dict[str, Any]
    redelivered: bool = False
    delivery_count: int = 1
    token: Any = None  # backend's handle (delivery tag, row id)


Handler = Callable[[Delivery], Awaitable[None]]
#: a batch of deliveries (at most one per key) in, one answer each out: True acks, False requeues
BatchHandler = Callable[[Sequence[Delivery]], Awaitable[Sequence[bool]]]
