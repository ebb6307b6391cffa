"""On RabbitMQ the route stage holds sixteen batches' worth of changes unacknowledged; on the
embedded broker it, and deliverers everywhere, keep the consumer's default
(BatchSettings.router_prefetch_for). The RabbitMQ half: tests/integration/test_router_prefetch_amqp.py.

On RabbitMQ a route batch waits for its publishes' confirms and its audit and state commits
before it is acked; with two batches' worth (the default) the router sat idle while both waited
(bench/README.md, stop 24). On the embedded broker no batch waits for a confirm, and sixteen
batches held in the router cost a bulk file 12-17 % of its rate and ~40 MB (stop 27). A
deliverer keeps the small default: a slow destination's backlog waits in the broker, not in the
deliverer's memory (tests/faults/test_faults_amqp.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from consumer_prefetch import prefetches

from bus.settings import Settings
from bus.settings_batching import ROUTER_BATCHES_AHEAD, BatchSettings
from bus.topology import INTAKE_QUEUE


def test_the_router_s_prefetch_follows_the_batch_size_within_amqp_s_limit() -> None:
    assert ROUTER_BATCHES_AHEAD == 16
    assert BatchSettings().router_prefetch == 16 * 64
    assert BatchSettings(batch_size=1).router_prefetch == 16
    assert BatchSettings(batch_size=1000).router_prefetch == 16000
    assert BatchSettings(batch_size=5000).router_prefetch == 65535  # basic.qos takes a short
    assert BatchSettings(batch_size=32).router_prefetch_for(embedded=False) == 16 * 32
    assert BatchSettings(batch_size=32).router_prefetch_for(embedded=True) is None


async def test_on_the_embedded_broker_the_router_and_deliverers_keep_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "state"\nbatch_size = 32\n', encoding="utf-8")
    asked = await prefetches(Settings.load(config, env={}), monkeypatch)
    assert INTAKE_QUEUE in asked
    assert asked[INTAKE_QUEUE] is None
    assert [prefetch for queue, prefetch in asked.items() if queue != INTAKE_QUEUE] == [None]
