"""Stopping a background loop for sure.

A loop that talks to RabbitMQ is stopped by cancelling its task, but a cancellation can be lost
on the way: aio-pika, cleaning up after a cancellation on a lost connection, may raise a channel
error in its place (bus.brokers.amqp.errors maps that back where it can), and Python 3.11's
`asyncio.wait_for` drops a cancellation that arrives as the awaited call completes. A loop that
goes on after a lost cancellation (a handler that logs a broker error and carries on) never
ends, and whoever awaited it — a `renkei run` process's shutdown — hangs with it.

`stop_task` cancels again until the task ends; loops also check a stopping flag of their own,
so one lost cancellation costs one more turn, not a hung process.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bus.logs import get_logger

__all__ = ["stop_task"]

log = get_logger("renkei.tasks")

AGAIN_AFTER = 1.0  # seconds between cancellations of a task that has not ended


async def stop_task(task: asyncio.Task[Any] | None, *, again_after: float = AGAIN_AFTER,
                    within: float | None = None) -> bool:
    """Cancel `task` and wait until it has ended, cancelling it again every `again_after`
    seconds while it runs on (a cancellation lost in a driver); give up after `within` seconds
    (None: never). True when the task has ended. Its exception, if any, is retrieved and logged."""
    if task is None:
        return True
    loop = asyncio.get_running_loop()
    deadline = None if within is None else loop.time() + within
    cancels = 0
    while not task.done():
        if deadline is not None and loop.time() >= deadline:
            break
        task.cancel()
        cancels += 1
        wait = again_after if deadline is None else max(0.0, min(again_after, deadline - loop.time()))
        await asyncio.wait({task}, timeout=wait)
    if cancels > 1:
        log.warning("a task went on after it was cancelled; cancelled again", task=task.get_name(),
                    cancellations=cancels, ended=task.done())
    if task.done() and not task.cancelled() and task.exception() is not None:
        log.warning("a task ended with an error as it was stopped", task=task.get_name(),
                    error=type(task.exception()).__name__)
    return task.done()
