"""The broker contract on the embedded SQLite broker, plus what only it must prove: a
process killed with SIGKILL (or frozen) while holding leases loses none of its messages."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from broker_cases import BrokerContract, MakeBroker, Recorder, eventually, message

from bus.brokers import open_broker
from bus.brokers.embedded import EmbeddedBroker

ROOT = Path(__file__).resolve().parents[2]

# A worker that leases messages, reports each one, and never settles them.
HOLDER = textwrap.dedent("""
    import asyncio, sys
    from bus.brokers.embedded import EmbeddedBroker

    async def main(path, queue, lease_timeout):
        broker = EmbeddedBroker(path, heartbeat_interval=0.1, lease_timeout=float(lease_timeout))
        await broker.connect()
        async def hold(delivery):
            print("leased", delivery.message_id, flush=True)
            await asyncio.Event().wait()
        await broker.consume(queue, hold, concurrency=4, prefetch=4)
        await asyncio.Event().wait()

    asyncio.run(main(*sys.argv[1:]))
""")


class TestEmbeddedBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self, tmp_path: Path) -> MakeBroker:
        return lambda: EmbeddedBroker(tmp_path / "broker.sqlite")

    @pytest.fixture
    def make_unreachable(self, tmp_path: Path) -> MakeBroker:
        (tmp_path / "garbage.sqlite").write_bytes(b"not a SQLite file, " * 100)
        return lambda: EmbeddedBroker(tmp_path / "garbage.sqlite")


async def test_describe_of_a_missing_broker_file_says_no_bus_ran_and_creates_nothing(tmp_path: Path) -> None:
    described = await EmbeddedBroker(tmp_path / "broker.sqlite").describe(["renkei.intake"])
    assert described.reachable is False
    assert described.problem is not None and "no broker file" in described.problem
    assert not (tmp_path / "broker.sqlite").exists()


@pytest.fixture
def start_holder(tmp_path: Path) -> Iterator[Callable[[float], subprocess.Popen[str]]]:
    """Starts the holder process, with the lease timeout it declares for itself."""
    processes: list[subprocess.Popen[str]] = []

    def start(lease_timeout: float) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(tmp_path / "broker.sqlite"), "q", str(lease_timeout)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


async def leased_by(process: subprocess.Popen[str], n: int) -> list[str]:
    assert process.stdout is not None
    stdout = process.stdout
    lines = [await asyncio.wait_for(asyncio.to_thread(stdout.readline), 30) for _ in range(n)]
    return [line.split()[1] for line in lines]


async def test_messages_leased_by_a_process_killed_with_sigkill_go_to_the_next_process(
    tmp_path: Path, start_holder: Callable[[float], subprocess.Popen[str]]
) -> None:
    publisher = EmbeddedBroker(tmp_path / "broker.sqlite")
    await publisher.connect()
    await publisher.declare("q")
    await publisher.publish_many([("q", message(n, key=f"r{n}")) for n in range(10)])
    await publisher.close()
    holder = start_holder(600)  # dead must be told by its pid, not by a silence this long
    held = await leased_by(holder, 4)
    holder.send_signal(signal.SIGKILL)
    holder.wait()

    successor = EmbeddedBroker(tmp_path / "broker.sqlite")
    await successor.connect()
    try:
        handler = Recorder()
        consumer = await successor.consume("q", handler)
        await eventually(lambda: len(handler.done) == 10, within=10)
        await consumer.cancel()
    finally:
        await successor.close()
    assert sorted(handler.done_ids()) == sorted(f"m-{n}" for n in range(10))
    again = {d.message_id: (d.redelivered, d.delivery_count) for d in handler.done}
    assert all(again[m] == (True, 2) for m in held)


async def test_leases_of_a_frozen_process_are_reclaimed_after_its_lease_timeout(
    tmp_path: Path, start_holder: Callable[[float], subprocess.Popen[str]]
) -> None:
    publisher = EmbeddedBroker(tmp_path / "broker.sqlite")
    await publisher.connect()
    await publisher.declare("q")
    await publisher.publish_many([("q", message(n, key=f"r{n}")) for n in range(6)])
    holder = start_holder(1.0)
    held = await leased_by(holder, 4)
    holder.send_signal(signal.SIGSTOP)  # alive, but its heartbeat stops
    try:
        successor = EmbeddedBroker(tmp_path / "broker.sqlite", heartbeat_interval=0.2)
        await successor.connect()
        handler = Recorder()
        consumer = await successor.consume("q", handler)
        await eventually(lambda: len(handler.done) == 6, within=10)
        await consumer.cancel()
        await successor.close()
    finally:
        holder.send_signal(signal.SIGKILL)
        await publisher.close()
    assert {d.message_id for d in handler.done if d.redelivered} == set(held)


async def test_a_publish_is_rolled_back_whole_when_one_queue_is_undeclared(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker.sqlite")
    await broker.connect()
    try:
        await broker.declare("q")
        with pytest.raises(Exception, match="never declared"):
            await broker.publish_many([("q", message(1)), ("nowhere", message(2))])
        assert (await broker.stats("q")).ready == 0
    finally:
        await broker.close()


async def test_a_key_is_leased_to_one_consumer_at_a_time_across_brokers(tmp_path: Path) -> None:
    a, b = EmbeddedBroker(tmp_path / "b.sqlite"), EmbeddedBroker(tmp_path / "b.sqlite")
    await a.connect()
    await b.connect()
    try:
        await a.declare("q")
        await a.publish_many([("q", message(n, key="one-resident")) for n in range(30)])
        shared = Recorder(delay=0.003)
        consumers = [await a.consume("q", shared), await b.consume("q", shared)]
        await eventually(lambda: len(shared.done) == 30)
        for consumer in consumers:
            await consumer.cancel()
    finally:
        await a.close()
        await b.close()
    assert shared.done_ids() == [f"m-{n}" for n in range(30)]
    assert shared.max_active_per_key == 1


def test_open_broker_picks_the_embedded_broker_for_no_url_or_a_sqlite_url(tmp_path: Path) -> None:
    default = open_broker(None, path=tmp_path / "x.sqlite")
    assert isinstance(default, EmbeddedBroker) and default.path == tmp_path / "x.sqlite"
    named = open_broker(f"sqlite:///{tmp_path}/y.sqlite")
    assert isinstance(named, EmbeddedBroker) and named.path == tmp_path / "y.sqlite"


async def test_a_delayed_message_keeps_its_queue_from_being_drained(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker.sqlite")
    await broker.connect()
    try:
        await broker.declare("q")
        await broker.publish_many([("q", message(1))], delay=30.0)
        assert (await broker.stats("q")).ready == 1
        assert not await broker.drained(["q"])
    finally:
        await broker.close()
