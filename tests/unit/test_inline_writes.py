"""`[bus] inline_writes = true`: the embedded broker's and the SQLite audit trail's transactions
run on the event loop when the file's writer lock is free, and in a worker thread when another
connection (another process of the bus) holds it, so the loop never waits for another writer.
Off every transaction goes to the thread. Left out (the default): on with the embedded broker,
off on RabbitMQ (measured: bench/README.md, stop 26)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bus.audit.events import AuditEvent, EventType
from bus.audit.log import AuditLog
from bus.audit.recorder import AuditRecorder
from bus.audit.sqlite_store import SqliteAuditStore
from bus.brokers.base import OutgoingMessage
from bus.brokers.embedded import EmbeddedBroker
from bus.errors import ConfigError
from bus.settings_batching import BatchSettings, read_batching
from bus.settings_read import Where

SUBJECT = "0" * 32


def _event(n: int) -> AuditEvent:
    return AuditEvent(EventType.RECEIVED, message_id=f"{n:064x}", municipality="131016", subject=SUBJECT,
                      sequence=n, kind="jumin.idou", source="test")


class _Ticker:
    """Counts the event loop's turns while a write is pending: proof the loop was not blocked."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self._task.cancel()


async def test_a_free_file_is_written_on_the_loop_and_a_held_one_in_the_thread(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker.sqlite", inline_writes=True)
    await broker.connect()
    try:
        await broker.declare("q")
        await broker.publish("q", OutgoingMessage(b"x", "m1", "k1"))
        free = broker.contention()
        # nothing else wrote: all on the loop but the first (the schema, as the worker opens the file)
        assert free["inline_transactions"] == free["transactions"] - 1 > 0

        other = sqlite3.connect(tmp_path / "broker.sqlite", isolation_level=None)  # another process's
        other.execute("BEGIN IMMEDIATE")
        ticker = _Ticker()
        publish = asyncio.create_task(broker.publish("q", OutgoingMessage(b"y", "m2", "k2")))
        await asyncio.sleep(0.3)
        assert not publish.done()  # it waits for the other writer, in the thread:
        assert ticker.ticks >= 10  # the loop went on meanwhile
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(publish, 10)
        ticker.stop()
        held = broker.contention()
        assert held["transactions"] == free["transactions"] + 1
        assert held["inline_transactions"] == free["inline_transactions"]  # that one was the thread's
        assert held["lock_waits"] == 1

        # free again: on the loop again. Not always the very next write: on a busy machine the
        # worker thread may still be checkpointing the file just then (seen once in a full run)
        sent = 2
        while sent < 6 and broker.contention()["inline_transactions"] == free["inline_transactions"]:
            sent += 1
            await broker.publish("q", OutgoingMessage(b"z", f"m{sent}", f"k{sent}"))
        assert broker.contention()["inline_transactions"] > free["inline_transactions"]
        assert (await broker.stats("q")).ready == sent
    finally:
        await broker.close()


async def test_with_inline_writes_off_every_transaction_is_the_threads(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker.sqlite")  # off: the class's own default
    await broker.connect()
    try:
        await broker.declare("q")
        await broker.publish("q", OutgoingMessage(b"x", "m1", "k1"))
        seen = broker.contention()
        assert seen["transactions"] > 0 and seen["inline_transactions"] == 0
    finally:
        await broker.close()


def test_the_audit_store_appends_at_once_or_says_it_would_wait(tmp_path: Path) -> None:
    store = SqliteAuditStore(tmp_path / "audit.sqlite")
    try:
        records = store.try_append([_event(1), _event(2)])
        assert records is not None and [r.seq for r in records] == [1, 2]
        other = sqlite3.connect(tmp_path / "audit.sqlite", isolation_level=None, timeout=0)
        other.execute("BEGIN IMMEDIATE")
        assert store.try_append([_event(3)]) is None  # would wait: nothing written
        other.execute("COMMIT")
        other.close()
        assert store.head().seq == 2
        records = store.try_append([_event(3)])
        assert records is not None and records[0].seq == 3
        assert [r.seq for r in store.records()] == [1, 2, 3]
    finally:
        store.close()


async def test_the_recorder_writes_on_the_loop_or_hands_a_held_trail_to_the_thread(tmp_path: Path) -> None:
    store = SqliteAuditStore(tmp_path / "audit.sqlite")
    recorder = AuditRecorder(AuditLog(store), inline=True)
    try:
        recorder.emit(_event(1))
        await recorder.flush()
        assert (recorder.written_inline, recorder.written_in_thread) == (1, 0)

        other = sqlite3.connect(tmp_path / "audit.sqlite", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        ticker = _Ticker()
        recorder.emit(_event(2))
        flush = asyncio.create_task(recorder.flush())
        await asyncio.sleep(0.3)
        assert not flush.done() and ticker.ticks >= 10  # waiting in the thread, the loop free
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(flush, 10)
        ticker.stop()
        assert (recorder.written_inline, recorder.written_in_thread) == (1, 1)
        assert [r.seq for r in store.records()] == [1, 2]  # one chain, in order
    finally:
        await recorder.aclose()
        store.close()


async def test_the_recorder_with_inline_off_always_uses_the_thread(tmp_path: Path) -> None:
    store = SqliteAuditStore(tmp_path / "audit.sqlite")
    recorder = AuditRecorder(AuditLog(store))  # off: the class's own default
    try:
        for n in (1, 2):
            recorder.emit(_event(n))
            await recorder.flush()
        assert (recorder.written_inline, recorder.written_in_thread) == (0, 2)
    finally:
        await recorder.aclose()
        store.close()


def test_inline_writes_is_read_from_the_bus_table_and_the_environment() -> None:
    at = Where(None, "")
    assert read_batching({}, {}, at).inline_writes is None  # left out: the broker decides
    assert read_batching({"inline_writes": True}, {}, at).inline_writes is True
    assert read_batching({}, {"RENKEI_INLINE_WRITES": "1"}, at).inline_writes is True
    assert read_batching({"inline_writes": True}, {"RENKEI_INLINE_WRITES": "0"}, at).inline_writes is False
    with pytest.raises(ConfigError, match="inline_writes"):
        read_batching({"inline_writes": "sometimes"}, {}, at)


async def test_the_bus_writes_inline_only_when_told_and_left_out_on_the_embedded_broker_only(tmp_path: Path) -> None:
    from bus.app import Bus
    from bus.settings import BusSettings, Settings

    for setting in (False, True, None):
        settings = Settings(bus=BusSettings(state_dir=tmp_path / str(setting), pseudonym_key=b"k" * 32),
                            batching=BatchSettings(inline_writes=setting))
        bus = Bus(settings, sinks={})
        expected = setting is not False  # None: the embedded broker's default, on
        assert bus.recorder.inline is expected
        assert isinstance(bus.broker, EmbeddedBroker) and bus.broker.inline_writes is expected
    assert BatchSettings().inline_writes is None
    assert BatchSettings().inline_for(embedded=True) is True
    assert BatchSettings().inline_for(embedded=False) is False  # RabbitMQ: the audit appends in the thread
    assert BatchSettings(inline_writes=True).inline_for(embedded=False) is True  # said: as said
    amqp = Settings(bus=BusSettings(state_dir=tmp_path / "amqp", pseudonym_key=b"k" * 32,
                                    broker_url="amqp://guest:guest@127.0.0.1:1/"))
    bus = Bus(amqp, sinks={})  # nothing connects until start
    assert bus.broker.name == "amqp" and bus.recorder.inline is False
