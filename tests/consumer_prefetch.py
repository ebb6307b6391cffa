"""The prefetch each consumer of a bus asks its broker for (tests/unit/test_router_prefetch.py,
tests/integration/test_router_prefetch_amqp.py). tests/ is on sys.path (its conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bus.app import Bus, BusParts
from bus.brokers.base import Broker
from bus.catalog import Catalog
from bus.ports import FunctionSink, Receipt
from bus.settings import Settings

__all__ = ["prefetches"]


async def prefetches(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Start a bus of `settings` with its router and the zei deliverer, and stop it: the
    `prefetch` each queue's consumer was started with (None: the consumer's default)."""
    asked: dict[str, Any] = {}
    consume_batches = Broker.consume_batches

    async def recorded(self: Broker, queue: str, handler: Any, **options: Any) -> Any:
        asked[queue] = options.get("prefetch")
        return await consume_batches(self, queue, handler, **options)

    monkeypatch.setattr(Broker, "consume_batches", recorded)
    bus = Bus(settings, sinks={"zei": FunctionSink(Receipt.applied)}, catalog=Catalog.load())
    await bus.start(BusParts(only_destinations=frozenset({"zei"})))
    try:
        assert bus.broker.name == ("embedded" if settings.bus.broker_url is None else "amqp")
    finally:
        await bus.stop()
    return asked
