"""What the embedded broker's per-message statements cost must not grow with the backlog:
an ack, a lease, a publish or an idle check touches its own rows, not the table."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from bus.brokers import embedded_store as store
from bus.brokers.embedded_worker import Worker

OWNER = "owner-1"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    path = tmp_path / "broker.sqlite"
    worker = asyncio.run(_created(path))
    assert worker
    with closing(sqlite3.connect(path, isolation_level=None)) as c:
        for queue in ("q", "backlog"):
            c.execute("INSERT INTO queues VALUES (?)", (queue,))
        yield c


async def _created(path: Path) -> bool:
    worker = await asyncio.to_thread(Worker, path)  # the schema, as the broker writes it
    await worker.aclose()
    return True


@contextmanager
def _steps(c: sqlite3.Connection) -> Iterator[list[int]]:
    """SQLite virtual-machine steps (in hundreds) run inside the block: a count, not a time."""
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    c.set_progress_handler(tick, 100)
    try:
        yield counted
    finally:
        c.set_progress_handler(None, 0)


def _publish(c: sqlite3.Connection, queue: str, n: int, start: int = 0) -> None:
    store.insert(c, [(queue, f"k{i}", f"m{i}", "{}", b"x") for i in range(start, start + n)], set())


def _one_round(c: sqlite3.Connection) -> dict[str, int]:
    """Steps of publishing, leasing and acking two messages of "q" (a settle batch of two: SQLite
    plans a single pair apart) and asking whether "q" is drained."""
    steps: dict[str, int] = {}
    measured: list[tuple[str, Callable[[], object]]] = []
    leased: list[tuple[object, ...]] = []
    measured.append(("publish", lambda: _publish(c, "q", 2, start=10**6)))
    measured.append(("lease", lambda: leased.extend(store.lease(c, "q", OWNER, 2))))
    measured.append(("ack", lambda: store.settle_rows(c, [(int(r[0]), int(r[5]), True) for r in leased], OWNER)))
    measured.append(("drained", lambda: store.drained(c, ["q"])))
    for name, action in measured:
        with _steps(c) as counted:
            action()
        steps[name] = counted[0]
    assert store.drained(c, ["q"])
    return steps


def test_an_ack_a_lease_a_publish_and_an_idle_check_cost_the_same_behind_a_backlog_of_20000(
    db: sqlite3.Connection,
) -> None:
    alone = _one_round(db)
    _publish(db, "backlog", 20_000)
    leased = store.lease(db, "backlog", OWNER, 500)  # leased rows of another queue, as under load
    assert len(leased) == 500
    behind = _one_round(db)
    for name, steps in behind.items():
        assert steps <= 2 * alone[name] + 5, (name, alone, behind)  # the table scan of 20,000 rows: ~100x


def test_every_per_message_statement_finds_its_rows_through_an_index(db: sqlite3.Connection) -> None:
    for name, sql in store.PER_MESSAGE.items():
        numbered = [int(n) for n in re.findall(r"\?(\d+)", sql)]
        params = [1] * (max(numbered) if numbered else sql.count("?"))
        plan = " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "SCAN messages" not in plan, (name, plan)
