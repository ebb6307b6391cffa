"""The embedded broker's consumers sleep until woken, never polling their queue: a local
publish wakes them, another process's commit is seen through the file's data version (one
cheap read per `poll_interval` for the whole broker), a delayed publish wakes them when due."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from broker_cases import Recorder, eventually, message

from bus.brokers import embedded_store
from bus.brokers.embedded import EmbeddedBroker


@pytest.fixture
def leases(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The queue of every lease query any embedded broker runs."""
    seen: list[str] = []
    real = embedded_store.lease

    def counted(c: Any, queue: str, owner: str, limit: int) -> list[tuple[Any, ...]]:
        seen.append(queue)
        return real(c, queue, owner, limit)

    monkeypatch.setattr(embedded_store, "lease", counted)
    return seen


async def test_idle_consumers_run_no_lease_query_however_short_the_poll_interval(
        tmp_path: Path, leases: list[str]) -> None:
    broker = EmbeddedBroker(tmp_path / "b.sqlite", poll_interval=0.005, heartbeat_interval=10, lease_timeout=30)
    await broker.connect()
    try:
        for q in ("a", "b", "c"):
            await broker.declare(q)
        consumers = [await broker.consume(q, Recorder()) for q in ("a", "b", "c")]
        await asyncio.sleep(0.2)
        started = len(leases)
        await asyncio.sleep(0.5)  # a hundred poll intervals, idle
        idle = len(leases) - started
        for consumer in consumers:
            await consumer.cancel()
    finally:
        await broker.close()
    assert started == 3  # one look at each queue when it starts
    assert idle == 0  # polling: about 300 lease queries (3 queues x 100 intervals)


async def test_a_local_publish_is_handed_out_at_once_and_leased_only_from_its_own_queue(
        tmp_path: Path, leases: list[str]) -> None:
    broker = EmbeddedBroker(tmp_path / "b.sqlite", poll_interval=5.0, heartbeat_interval=10, lease_timeout=30)
    await broker.connect()
    try:
        await broker.declare("a")
        await broker.declare("b")
        seen = Recorder()
        consumers = [await broker.consume("a", seen), await broker.consume("b", Recorder())]
        await asyncio.sleep(0.1)
        leases.clear()
        started = time.monotonic()
        await broker.publish("a", message(1))
        await eventually(lambda: len(seen.done) == 1, within=2.0)
        took = time.monotonic() - started
        for consumer in consumers:
            await consumer.cancel()
    finally:
        await broker.close()
    assert took < 1.0  # not the 5 s poll interval
    assert "b" not in leases


async def test_another_brokers_publish_on_the_same_file_is_seen_within_a_poll_interval(tmp_path: Path) -> None:
    consumer_side = EmbeddedBroker(tmp_path / "b.sqlite", poll_interval=0.05, heartbeat_interval=10, lease_timeout=30)
    publisher = EmbeddedBroker(tmp_path / "b.sqlite", heartbeat_interval=10, lease_timeout=30)
    await consumer_side.connect()
    await publisher.connect()
    try:
        await consumer_side.declare("q")
        seen = Recorder()
        consumer = await consumer_side.consume("q", seen)
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await publisher.publish("q", message(1))
        await eventually(lambda: len(seen.done) == 1, within=5.0)
        took = time.monotonic() - started
        await consumer.cancel()
    finally:
        await publisher.close()
        await consumer_side.close()
    assert took < 1.5  # the data version, not the heartbeat (10 s)
    assert seen.done_ids() == ["m-1"]


async def test_a_delayed_publish_is_handed_out_when_it_comes_due_and_not_before(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "b.sqlite", poll_interval=5.0, heartbeat_interval=10, lease_timeout=30)
    await broker.connect()
    try:
        await broker.declare("q")
        seen = Recorder()
        consumer = await broker.consume("q", seen)
        started = time.monotonic()
        await broker.publish_many([("q", message(1))], delay=0.4)
        await asyncio.sleep(0.25)
        early = len(seen.done)
        await eventually(lambda: len(seen.done) == 1, within=3.0)
        took = time.monotonic() - started
        await consumer.cancel()
    finally:
        await broker.close()
    assert early == 0
    assert 0.4 <= took < 1.5  # due at 0.4 s; neither the poll interval (5 s) nor the heartbeat (10 s)
