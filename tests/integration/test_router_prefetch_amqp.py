"""On RabbitMQ the bus gives its route stage sixteen batches' worth of prefetch, and its
deliverers the consumer's default (BatchSettings.router_prefetch_for; the embedded half is
tests/unit/test_router_prefetch.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from consumer_prefetch import prefetches

from bus.settings import Settings
from bus.topology import INTAKE_QUEUE


async def test_on_rabbitmq_the_router_holds_sixteen_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, amqp_vhost_url: str) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text(f'[bus]\nbroker_url = "{amqp_vhost_url}"\nstate_dir = "state"\nbatch_size = 32\n',
                      encoding="utf-8")
    asked = await prefetches(Settings.load(config, env={}), monkeypatch)
    assert asked[INTAKE_QUEUE] == 16 * 32
    assert [prefetch for queue, prefetch in asked.items() if queue != INTAKE_QUEUE] == [None]
