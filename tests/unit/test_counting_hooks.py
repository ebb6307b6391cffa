"""The counters `renkei status` shows are group-committed: concurrent reports share one
transaction, and `written` returns once every report made before it is in the state store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from bus.stages import CountingHooks
from bus.state import StateStore


class _Counted(StateStore):
    """The real state store, counting its counter transactions."""

    transactions = 0

    def count(self, scope: str, name: str, counter: str, by: int = 1) -> None:
        self.transactions += 1
        super().count(scope, name, counter, by)

    def count_many(self, counts: Sequence[tuple[str, str, str]]) -> None:
        self.transactions += 1
        super().count_many(counts)


@pytest.fixture
async def counted(tmp_path: Path) -> AsyncIterator[tuple[_Counted, CountingHooks]]:
    state = _Counted(tmp_path / "state.sqlite")
    hooks = CountingHooks(state)
    yield state, hooks
    await hooks.aclose()
    state.close()


async def test_counts_reported_before_written_are_in_the_state_store_when_it_returns(
    counted: tuple[_Counted, CountingHooks],
) -> None:
    state, hooks = counted
    for _ in range(3):
        hooks.attempted("zei")
    hooks.attempted("kokuho")
    await hooks.written()
    assert state.counters("destination") == {"zei": {"attempts": 3}, "kokuho": {"attempts": 1}}


async def test_the_reports_of_concurrent_messages_share_one_transaction(
    counted: tuple[_Counted, CountingHooks],
) -> None:
    state, hooks = counted

    async def one_message() -> None:
        hooks.attempted("zei")
        await asyncio.sleep(0)
        hooks.attempted("zei")
        await hooks.written()

    await asyncio.gather(*(one_message() for _ in range(50)))
    assert state.counters("destination") == {"zei": {"attempts": 100}}
    assert state.transactions <= 3  # one per message and report would be 100


async def test_counts_queued_at_close_are_written(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite")
    hooks = CountingHooks(state)
    hooks.attempted("zei")
    await hooks.aclose()
    assert state.counters("destination") == {"zei": {"attempts": 1}}
    state.close()


def test_a_report_outside_an_event_loop_is_written_at_once(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite")
    CountingHooks(state).attempted("zei")
    assert state.counters("destination") == {"zei": {"attempts": 1}}
    state.close()
