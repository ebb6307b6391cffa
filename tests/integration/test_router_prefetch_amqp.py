"""On RabbitMQ the bus gives its route stage sixteen batches' worth of prefetch, and its
deliverers the consumer's default (BatchSettings.router_prefetch_for; the embedded half is
tests/unit/test_router_prefetch.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bus.app import Bus, BusParts
from bus.brokers.base import Broker
from bus.catalog import Catalog
from bus.ports import FunctionSink, Receipt
from bus.settings import Settings
from bus.topology import INTAKE_QUEUE


async def test_on_rabbitmq_the_router_holds_sixteen_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, amqp_vhost_url: str) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text(f'[bus]\nbroker_url = "{amqp_vhost_url}"\nstate_dir = "state"\nbatch_size = 32\n',
                      encoding="utf-8")
    settings = Settings.load(config, env={})
    asked: dict[str, Any] = {}
    consume_batches = Broker.consume_batches

    async def recorded(self: Broker, queue: str, handler: Any, **options: Any) -> Any:
        asked[queue] = options.get("prefetch")
        return await consume_batches(self, queue, handler, **options)

    monkeypatch.setattr(Broker, "consume_batches", recorded)
    bus = Bus(settings, sinks={"zei": FunctionSink(Receipt.applied)}, catalog=Catalog.load())
    await bus.start(BusParts(only_destinations=frozenset({"zei"})))
    try:
        assert bus.broker.name != "embedded"
        assert asked[INTAKE_QUEUE] == 16 * 32
        assert [prefetch for queue, prefetch in asked.items() if queue != INTAKE_QUEUE] == [None]
    finally:
        await bus.stop()
