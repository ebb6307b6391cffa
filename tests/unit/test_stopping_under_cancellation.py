"""A process asked to stop stops, even when a broker call turns the cancellation into a broker
error: aio-pika, closing a channel on a lost connection, raised ChannelInvalidStateError in
place of the CancelledError, `mapped` made it a BrokerUnavailable, and the process reporter's
loop (which retries on BrokerError) went on forever, so `renkei run` hung at shutdown after the
broker was killed -9 (tests/faults, seen once in CI)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiormq.exceptions
import pytest

from bus.brokers.amqp import mapped
from bus.brokers.base import QueueStats
from bus.errors import BrokerError, BrokerUnavailable
from bus.status import ProcessReporter


async def _aio_pika_cleaning_up() -> None:
    """What aio-pika's ``async with channel`` did when cancelled on a lost connection."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        raise aiormq.exceptions.ChannelInvalidStateError("writer is None") from None


async def test_a_cancelled_broker_call_stays_cancelled() -> None:
    async def call() -> None:
        with mapped("reading the stats of queue 'zei'"):
            await _aio_pika_cleaning_up()

    task = asyncio.create_task(call())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_the_same_error_without_a_cancellation_is_a_lost_broker() -> None:
    with pytest.raises(BrokerUnavailable, match="ChannelInvalidStateError"):
        with mapped("reading the stats of queue 'zei'"):
            raise aiormq.exceptions.ChannelInvalidStateError("writer is None")


async def test_an_error_that_is_not_the_brokers_is_left_as_it_is() -> None:
    with pytest.raises(KeyError):
        with mapped("reading the stats of queue 'zei'"):
            raise KeyError("x")


class SwallowingBroker:
    """stats() hangs until cancelled, then raises a broker error in its place, every time."""

    def __init__(self) -> None:
        self.calls = 0
        self.hang = False

    async def stats(self, queue: str) -> QueueStats:
        self.calls += 1
        if not self.hang:
            return QueueStats(queue, 0, 0, 1)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise BrokerUnavailable("reading the stats: ChannelInvalidStateError") from None
        raise AssertionError("not reached")


async def test_the_process_reporter_stops_when_its_broker_swallows_the_cancellation(tmp_path: Path) -> None:
    broker = SwallowingBroker()
    reporter = ProcessReporter(broker, ["zei"], tmp_path, role="deliver", interval=0.01)  # type: ignore[arg-type]
    await reporter.start()
    [report] = (tmp_path / "processes").glob("*.json")
    broker.hang, before = True, broker.calls
    while broker.calls == before:  # noqa: ASYNC110 - until the loop hangs in stats()
        await asyncio.sleep(0.01)
    await asyncio.wait_for(reporter.stop(), 3.0)
    assert not report.exists()
    calls = broker.calls
    await asyncio.sleep(0.05)
    assert broker.calls == calls, "the report loop still runs after stop()"


async def test_a_report_that_cannot_be_written_is_retried_until_stop(tmp_path: Path) -> None:
    class Down(SwallowingBroker):
        async def stats(self, queue: str) -> QueueStats:
            self.calls += 1
            raise BrokerError("down")

    broker = Down()
    reporter = ProcessReporter(broker, ["zei"], tmp_path, role="deliver", interval=0.01)  # type: ignore[arg-type]
    (tmp_path / "processes").mkdir()
    reporter._task = asyncio.get_running_loop().create_task(reporter._loop())
    while broker.calls < 3:  # noqa: ASYNC110 - waiting for the loop to retry
        await asyncio.sleep(0.01)
    await asyncio.wait_for(reporter.stop(), 3.0)
    assert reporter._task.done()
