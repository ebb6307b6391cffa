"""A process asked to stop stops, even when a broker call turns the cancellation into a broker
error: aio-pika, closing a channel on a lost connection, raised ChannelInvalidStateError in
place of the CancelledError, `mapped` made it a BrokerUnavailable, and the process reporter's
loop (which retries on BrokerError) went on forever, so `renkei run` hung at shutdown after the
broker was killed -9 (tests/faults, seen once in CI)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiormq.exceptions
import pytest

from bus.brokers.amqp import mapped
from bus.brokers.base import QueueStats
from bus.console.alerts import Alerts
from bus.console.config import ConsoleOptions
from bus.console.monitor import Monitor
from bus.errors import BrokerError, BrokerUnavailable
from bus.status import ProcessReporter
from bus.tasks import stop_task


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


class SwallowingData:
    """The console's BusData whose status() (a broker look) turns a cancellation into a broker error."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.looks = 0
        self.hanging = asyncio.Event()
        self.swallow = True

    def open_audit(self) -> None:
        raise AssertionError("not verified in this test")

    async def status(self) -> None:
        self.looks += 1
        self.hanging.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if not self.swallow:
                raise
            raise BrokerUnavailable("describing the queues: ChannelInvalidStateError") from None


async def test_a_bus_process_monitor_stops_when_its_look_swallows_the_cancellation(tmp_path: Path) -> None:
    """The sibling of the reporter's hang: `renkei run`'s probes (BusProbes) stop their monitor,
    whose look at the broker lost the cancellation after a kill -9 of the broker (tests/faults,
    CI of stop 18: 'router did not stop within 30 s', main waiting in Monitor.stop)."""
    data = SwallowingData(tmp_path)
    monitor = Monitor(data, ConsoleOptions(sample_every=0.01), Alerts(None, quiet_period=0),  # type: ignore[arg-type]
                      history=False, full_verify=False, tail_latency=False)
    await monitor.start(wait=False)
    await asyncio.wait_for(data.hanging.wait(), 3.0)
    stopping = asyncio.create_task(monitor.stop())
    await asyncio.wait({stopping}, timeout=3.0)
    try:
        assert stopping.done(), "Monitor.stop() hangs on a look that lost its cancellation"
    finally:
        data.swallow = False
        if monitor._task is not None:  # let a hung stop end
            monitor._task.cancel()
        await stopping
    looks = data.looks
    await asyncio.sleep(0.05)
    assert data.looks == looks, "the monitor still looks after stop()"


async def test_stop_task_cancels_again_a_task_that_went_on() -> None:
    lost = 0

    async def loop() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if lost < 2:  # two cancellations lost in a driver, the third one lands
                    lost += 1
                    continue
                raise

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    assert await asyncio.wait_for(stop_task(task, again_after=0.05), 3.0)
    assert task.cancelled() and lost == 2


async def test_stop_task_gives_up_after_within_and_says_so() -> None:
    released = False

    async def stubborn() -> None:
        while not released:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert not await stop_task(task, again_after=0.02, within=0.1)
    assert not task.done()
    released = True
    assert await stop_task(task, again_after=0.02, within=1.0)
