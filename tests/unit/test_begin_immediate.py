"""A write that waits for another process's writer lock on one of the bus's SQLite files waits in
steps of at most about a millisecond (bus.sqlite.begin_immediate), not in SQLite's own busy
handler's (1, 2, 5, 10 … 100 ms: a lock held 1 ms cost a waiter 3–8 ms, and with three processes
on one file each process's writer stood idle a sixth of the time). The embedded broker's worker,
the audit trail and the state and delivery stores all wait so; a lock held past the timeout is
still SQLITE_BUSY, and the connection's busy timeout is as it was afterwards."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bus.sqlite
from bus.audit.events import AuditEvent, EventType
from bus.audit.sqlite_store import SqliteAuditStore
from bus.brokers.base import OutgoingMessage
from bus.brokers.embedded import EmbeddedBroker
from bus.sqlite import LocalFile, begin_immediate, busy

HELD = 0.15  # seconds another connection holds the writer lock


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every sleep begin_immediate takes between its tries."""
    taken: list[float] = []
    real = time.sleep

    def sleep(seconds: float) -> None:
        taken.append(seconds)
        real(seconds)

    monkeypatch.setattr(bus.sqlite.time, "sleep", sleep)
    return taken


def _hold_lock(path: Path, seconds: float) -> threading.Thread:
    """Another connection (as another process's) takes the file's writer lock for `seconds`."""
    taken = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        taken.set()
        threading.Event().wait(seconds)  # not time.sleep: the fixture counts those
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait(5)
    return thread


def _in_short_steps(sleeps: list[float]) -> None:
    assert len(sleeps) >= 10  # it waited, and in many tries: 150 ms held, steps of 1 ms at most
    assert max(sleeps) <= 0.0015


def test_it_waits_for_the_lock_in_short_steps_and_leaves_the_busy_timeout_as_it_was(
        tmp_path: Path, sleeps: list[float]) -> None:
    db = sqlite3.connect(tmp_path / "f.sqlite", isolation_level=None, timeout=7)
    db.execute("PRAGMA journal_mode=WAL")
    holder = _hold_lock(tmp_path / "f.sqlite", HELD)
    begin_immediate(db, timeout=10)
    db.execute("COMMIT")
    holder.join()
    _in_short_steps(sleeps)
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000


def test_a_lock_held_past_the_timeout_is_still_busy(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "f.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    holder = _hold_lock(tmp_path / "f.sqlite", 0.5)
    with pytest.raises(sqlite3.OperationalError) as raised:
        begin_immediate(db, timeout=0.05)
    holder.join()
    assert busy(raised.value)
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 50


def _stores(tmp_path: Path) -> Iterator[tuple[str, Path, Callable[[], Any]]]:
    """(name, file, one write of that store that must take the file's writer lock)."""
    audit = SqliteAuditStore(tmp_path / "audit.sqlite")
    yield "audit", audit.path, lambda: audit.append([AuditEvent(EventType.AUTH_FAILED, actor="http")])
    local = LocalFile(tmp_path / "state.sqlite", schema="CREATE TABLE IF NOT EXISTS t (x INTEGER)")

    def insert() -> None:
        with local.tx() as db:
            db.execute("INSERT INTO t VALUES (1)")

    yield "state", local.path, insert


def test_the_audit_trail_and_the_local_stores_wait_in_short_steps(tmp_path: Path, sleeps: list[float]) -> None:
    for name, path, write in _stores(tmp_path):
        sleeps.clear()
        holder = _hold_lock(path, HELD)
        write()
        holder.join()
        assert sleeps, name
        _in_short_steps(sleeps)


async def test_the_embedded_brokers_worker_waits_in_short_steps(tmp_path: Path, sleeps: list[float]) -> None:
    broker = EmbeddedBroker(tmp_path / "broker.sqlite")  # inline writes off: every transaction in the thread
    await broker.connect()
    try:
        await broker.declare("q")
        sleeps.clear()
        holder = await asyncio.to_thread(_hold_lock, tmp_path / "broker.sqlite", HELD)
        await asyncio.wait_for(broker.publish("q", OutgoingMessage(b"x", "m1", "k1")), 10)
        holder.join()
    finally:
        await broker.close()
    _in_short_steps(sleeps)
