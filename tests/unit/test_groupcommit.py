"""bus.groupcommit: the one group commit of the embedded broker, its settles and the audit recorder."""

from __future__ import annotations

import asyncio

import pytest

from bus.groupcommit import Failed, GroupCommit


class Log:
    """A commit function that records its batches; `gate` holds a commit until it is set."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.running = 0
        self.max_running = 0
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def __call__(self, batch: list[int]) -> list[object]:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            self.batches.append(list(batch))
            self.started.set()
            if self.gate is not None:
                await self.gate.wait()
            return [Failed(ValueError(f"odd {n}")) if n < 0 else n * 10 for n in batch]
        finally:
            self.running -= 1


async def test_items_submitted_together_share_one_commit_and_each_gets_its_own_outcome() -> None:
    log = Log()
    group = GroupCommit(log)
    results = await asyncio.gather(*(group.submit(n) for n in range(1, 6)))
    assert results == [10, 20, 30, 40, 50]
    assert log.batches == [[1, 2, 3, 4, 5]]
    await group.aclose()


async def test_items_added_while_a_commit_runs_share_the_next_one_and_commits_never_overlap() -> None:
    log = Log()
    log.gate = asyncio.Event()
    group = GroupCommit(log)
    first = asyncio.ensure_future(group.submit(1))
    await asyncio.wait_for(log.started.wait(), 5)
    later = [asyncio.ensure_future(group.submit(n)) for n in range(2, 6)]
    await asyncio.sleep(0.01)
    log.gate.set()
    assert await first == 10 and await asyncio.gather(*later) == [20, 30, 40, 50]
    assert log.batches == [[1], [2, 3, 4, 5]]
    assert log.max_running == 1
    await group.aclose()


async def test_items_of_tasks_ready_when_the_writer_starts_share_its_first_commit() -> None:
    log = Log()
    group = GroupCommit(log)
    group.add(1)  # starts the writer task
    later = [asyncio.ensure_future(group.submit(n)) for n in range(2, 6)]  # ready after the writer
    assert await asyncio.gather(*later) == [20, 30, 40, 50]
    assert log.batches == [[1, 2, 3, 4, 5]]
    await group.aclose()


async def test_an_item_failing_alone_fails_only_itself_and_a_raising_commit_fails_the_batch() -> None:
    log = Log()
    group = GroupCommit(log)
    outcomes = await asyncio.gather(group.submit(1), group.submit(-2), group.submit(3), return_exceptions=True)
    assert outcomes[0] == 10 and outcomes[2] == 30
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "odd -2"

    async def broken(batch: list[int]) -> list[object]:
        raise OSError("disk full")

    failing = GroupCommit(broken)
    results = await asyncio.gather(failing.submit(1), failing.submit(2), return_exceptions=True)
    assert [type(r) for r in results] == [OSError, OSError]
    await group.aclose()
    await failing.aclose()


async def test_a_batch_holds_at_most_max_batch_items_in_the_order_added() -> None:
    log = Log()
    group = GroupCommit(log, max_batch=3)
    await asyncio.gather(*(group.submit(n) for n in range(1, 9)))
    assert log.batches == [[1, 2, 3], [4, 5, 6], [7, 8]]
    await group.aclose()


async def test_max_delay_lets_a_batch_grow_and_drain_commits_at_once() -> None:
    log = Log()
    group = GroupCommit(log, max_delay=30.0)
    group.add(1)
    group.add(2)
    await asyncio.sleep(0.05)
    assert log.batches == [] and group.pending == 2  # still gathering
    await asyncio.wait_for(group.drain(), 5)
    assert log.batches == [[1, 2]] and group.pending == 0
    await group.aclose()


async def test_a_drain_returns_when_what_was_added_before_it_is_committed_and_not_before() -> None:
    log = Log()
    log.gate = asyncio.Event()
    group = GroupCommit(log)
    group.add(1)
    await asyncio.wait_for(log.started.wait(), 5)  # 1 is being committed
    first = asyncio.ensure_future(group.drain())  # waits for 1
    group.add(2)
    second = asyncio.ensure_future(group.drain())  # waits for 1 and 2
    cancelled = asyncio.ensure_future(group.drain())
    await asyncio.sleep(0.01)
    cancelled.cancel()  # a flush that timed out leaves the others as they were
    log.gate.set()
    await asyncio.wait_for(first, 5)
    assert log.batches[0] == [1]
    await asyncio.wait_for(second, 5)
    assert log.batches == [[1], [2]] and group.pending == 0
    await asyncio.wait_for(group.drain(), 5)  # nothing pending: at once
    await group.aclose()


async def test_closing_fails_what_was_not_committed() -> None:
    log = Log()
    log.gate = asyncio.Event()
    group = GroupCommit(log)
    waiting = asyncio.ensure_future(group.submit(1))
    await asyncio.wait_for(log.started.wait(), 5)
    await group.aclose()
    with pytest.raises(RuntimeError, match="closed before the commit"):
        await waiting
    with pytest.raises(RuntimeError, match="closed"):
        group.add(2)


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(Log(), max_batch=0)
