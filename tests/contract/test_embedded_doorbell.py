"""The embedded broker's doorbell (bus/brokers/doorbell.py): another broker instance's publish
reaches a consumer at once, not at the consumer's next poll of the file; only the queues rung are
looked at; a stranger's datagram wakes nothing; with the doorbell off, the poll alone still
delivers. Two instances on one file in one process are two owners with two sockets, as two
processes are."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from broker_cases import Recorder, eventually, message

from bus.brokers import broker_for, embedded_store
from bus.brokers.doorbell import EVERY_QUEUE, Doorbell, address
from bus.brokers.embedded import EmbeddedBroker
from bus.errors import ConfigError
from bus.settings import BusSettings, Settings
from bus.settings_batching import BatchSettings, read_batching
from bus.settings_read import Where

SLOW_POLL = 3.0  # the data-version poll: a wake faster than this is the doorbell's


@pytest.fixture
def leases(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(owner, queue) of every lease query any embedded broker runs."""
    seen: list[tuple[str, str]] = []
    real = embedded_store.lease

    def counted(c: Any, queue: str, owner: str, limit: int) -> list[tuple[Any, ...]]:
        seen.append((owner, queue))
        return real(c, queue, owner, limit)

    monkeypatch.setattr(embedded_store, "lease", counted)
    return seen


def _broker(path: Path, *, doorbell: bool = True) -> EmbeddedBroker:
    return EmbeddedBroker(path, poll_interval=SLOW_POLL, heartbeat_interval=10, lease_timeout=30, doorbell=doorbell)


@pytest.fixture
async def pair(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[EmbeddedBroker, EmbeddedBroker]]:
    """A consuming instance (queues a and b declared) and a publishing one that connects after it."""
    doorbell = getattr(request, "param", True)
    consumer_side = _broker(tmp_path / "b.sqlite", doorbell=doorbell)
    publisher = _broker(tmp_path / "b.sqlite", doorbell=doorbell)
    await consumer_side.connect()
    try:
        for q in ("a", "b"):
            await consumer_side.declare(q)
        yield consumer_side, publisher
    finally:
        await publisher.close()
        await consumer_side.close()


async def _time_to_deliver(consumer_side: EmbeddedBroker, publisher: EmbeddedBroker, within: float) -> float:
    seen = Recorder()
    consumer = await consumer_side.consume("a", seen)
    await publisher.connect()  # learns who consumes what (and again at each heartbeat)
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await publisher.publish("a", message(1))
    try:
        await eventually(lambda: len(seen.done) == 1, within=within)
    finally:
        await consumer.cancel()
    assert seen.done_ids() == ["m-1"]
    return time.monotonic() - started


async def test_another_instances_publish_is_handed_out_at_once_not_at_the_next_poll(
        pair: tuple[EmbeddedBroker, EmbeddedBroker]) -> None:
    consumer_side, publisher = pair
    took = await _time_to_deliver(consumer_side, publisher, within=SLOW_POLL * 2)
    assert took < 0.5  # the poll would take up to 3 s
    assert publisher._bell is not None and publisher._bell.sent >= 1


@pytest.mark.parametrize("pair", [False], indirect=True)
async def test_without_the_doorbell_the_poll_alone_delivers(pair: tuple[EmbeddedBroker, EmbeddedBroker]) -> None:
    consumer_side, publisher = pair
    took = await _time_to_deliver(consumer_side, publisher, within=SLOW_POLL * 3)
    assert took >= 0.5  # no ring: it waited for the data-version poll
    assert publisher._bell is None and consumer_side._bell is None


async def test_a_ring_wakes_only_the_consumers_of_the_queues_rung(
        pair: tuple[EmbeddedBroker, EmbeddedBroker], leases: list[tuple[str, str]]) -> None:
    consumer_side, publisher = pair
    seen_a, seen_b = Recorder(), Recorder()
    consumers = [await consumer_side.consume("a", seen_a), await consumer_side.consume("b", seen_b)]
    await publisher.connect()
    await asyncio.sleep(0.1)
    leases.clear()
    try:
        await publisher.publish("a", message(1))
        await eventually(lambda: len(seen_a.done) == 1, within=SLOW_POLL / 2)
        await asyncio.sleep(0.1)
    finally:
        for consumer in consumers:
            await consumer.cancel()
    mine = [queue for owner, queue in leases if owner == consumer_side.owner]
    assert "a" in mine
    assert "b" not in mine  # not rung: not looked at


async def test_a_strangers_datagram_wakes_nothing_and_breaks_nothing(
        pair: tuple[EmbeddedBroker, EmbeddedBroker], leases: list[tuple[str, str]]) -> None:
    consumer_side, publisher = pair
    seen = Recorder()
    consumer = await consumer_side.consume("a", seen)
    await asyncio.sleep(0.1)
    leases.clear()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stranger:
        for junk in (b"\xff\xfe\x00garbage", b"no-such-queue\nnor-this", b"", b"\n" * 5000):
            stranger.sendto(junk, address(consumer_side.owner))
    await asyncio.sleep(0.2)
    assert leases == []  # no queue of its own was named
    await publisher.connect()
    await publisher.publish("a", message(1))  # and the bell still rings
    await eventually(lambda: len(seen.done) == 1, within=SLOW_POLL / 2)
    await consumer.cancel()


async def test_a_ring_naming_every_queue_wakes_them_all(
        pair: tuple[EmbeddedBroker, EmbeddedBroker], leases: list[tuple[str, str]]) -> None:
    consumer_side, _ = pair
    consumers = [await consumer_side.consume(q, Recorder()) for q in ("a", "b")]
    await asyncio.sleep(0.1)
    leases.clear()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ringer:
        ringer.sendto(EVERY_QUEUE.encode(), address(consumer_side.owner))
    await eventually(lambda: {q for _, q in leases} == {"a", "b"}, within=SLOW_POLL / 2)
    for consumer in consumers:
        await consumer.cancel()


async def test_ringing_an_instance_that_is_gone_is_counted_not_raised() -> None:
    woken: list[set[str]] = []
    bell = Doorbell("a" * 32, woken.append)
    assert bell.open()
    try:
        bell.ring(["f" * 32], ["q"])  # nobody listens there
        assert (bell.sent, bell.missed) == (0, 1)
        bell.ring(["a" * 32], ["x" * 3000])  # to itself, too long for a datagram: every queue
        await eventually(lambda: woken == [{EVERY_QUEUE}], within=2.0)
        assert bell.sent == 1
    finally:
        bell.close()


async def test_an_instance_that_cannot_bind_its_bell_falls_back_to_the_poll(tmp_path: Path) -> None:
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    broker = EmbeddedBroker(tmp_path / "b.sqlite", poll_interval=0.05, heartbeat_interval=10, lease_timeout=30)
    squatter.bind(address(broker.owner))  # its name taken (cannot happen by chance: a random UUID)
    try:
        await broker.connect()
        try:
            assert broker._bell is None
            await broker.declare("q")
            seen = Recorder()
            consumer = await broker.consume("q", seen)
            await broker.publish("q", message(1))
            await eventually(lambda: len(seen.done) == 1, within=2.0)
            await consumer.cancel()
        finally:
            await broker.close()
    finally:
        squatter.close()


def test_the_setting_turns_the_doorbell_off_and_a_bad_value_names_itself(tmp_path: Path) -> None:
    at = Where(None, "")
    assert read_batching({}, {}, at).embedded_doorbell is True
    assert read_batching({"embedded_doorbell": False}, {}, at).embedded_doorbell is False
    assert read_batching({"embedded_doorbell": True}, {"RENKEI_EMBEDDED_DOORBELL": "0"}, at).embedded_doorbell is False
    with pytest.raises(ConfigError, match=r"\[bus\] embedded_doorbell must be true or false"):
        read_batching({"embedded_doorbell": "sometimes"}, {}, at)
    for flag in (True, False):
        settings = Settings(bus=BusSettings(state_dir=tmp_path), batching=BatchSettings(embedded_doorbell=flag))
        broker = broker_for(settings)
        assert isinstance(broker, EmbeddedBroker) and broker.doorbell is flag
