"""The embedded broker says how it met the file's writer lock (issue 10: the bus in several
processes over one file): a write that waited for another connection is counted with its wait,
and the time it held the lock itself is counted too."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from bus.brokers.base import OutgoingMessage
from bus.brokers.embedded import EmbeddedBroker


async def test_a_publish_waiting_for_another_process_write_is_counted_with_its_wait(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker.sqlite")
    await broker.connect()
    try:
        await broker.declare("q")
        before = broker.contention()
        assert before["lock_waits"] == 0 and before["transactions"] > 0 and before["lock_held_seconds"] > 0
        other = sqlite3.connect(tmp_path / "broker.sqlite", isolation_level=None)  # as another process's
        other.execute("BEGIN IMMEDIATE")
        publish = asyncio.create_task(broker.publish("q", OutgoingMessage(b"x", "m1", "k1")))
        await asyncio.sleep(0.3)
        assert not publish.done()  # it waits for the other writer
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(publish, 10)
        after = broker.contention()
        assert after["lock_waits"] == 1
        assert after["lock_wait_seconds"] >= 0.25
        assert after["transactions"] > before["transactions"]
    finally:
        await broker.close()
    assert broker.contention() == {"transactions": 0, "inline_transactions": 0, "lock_held_seconds": 0.0,
                                   "lock_waits": 0, "lock_wait_seconds": 0.0}  # closed: nothing to say
