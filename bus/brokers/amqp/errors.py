"""The one place aio-pika, aiormq and socket errors become renkei's broker errors.

Everything that talks to RabbitMQ wraps its calls in `mapped(doing)`: the broker, queue
migration (`migration.py`) and the AMQP intake (`adapters/sources/amqp_intake.py`). So a
caller catches `bus.errors.BrokerError` and its subclasses, never a driver's exception:

- a basic.return (no queue took the message), a basic.nack, a publish not confirmed in time
  → `PublishNotConfirmed` (not accepted: publish again);
- a lost or refused connection, a closed channel, a socket error, any other timeout
  → `BrokerUnavailable`;
- anything else the broker said (NOT_FOUND, ACCESS_REFUSED, PRECONDITION_FAILED …)
  → `BrokerError`, with what to do when a queue exists with other arguments.

A cancelled task stays cancelled: aio-pika, cleaning up after a cancellation on a lost
connection, raises a channel error in place of the CancelledError; mapped to a BrokerError,
a loop that retries on BrokerError would never learn that it was asked to stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import aiormq.exceptions

from bus.errors import BrokerError, BrokerUnavailable, PublishNotConfirmed
from bus.urls import without_password as safe_url

__all__ = ["broker_error", "mapped", "reply_text", "safe_url"]


@contextmanager
def mapped(doing: str, *, publishing: bool = False) -> Iterator[None]:
    """Run the block; a driver error leaves it as renkei's (`broker_error`), the cause kept.
    `doing` says what was being done ("declaring queue 'x'"); `publishing` makes a timeout
    a `PublishNotConfirmed` rather than a lost broker."""
    try:
        yield
    except BrokerError:
        raise
    except Exception as exc:
        if _cancelling():
            raise asyncio.CancelledError(f"{doing}: cancelled") from exc
        error = broker_error(doing, exc, publishing=publishing)
        if error is None:
            raise
        raise error from exc


def _cancelling() -> bool:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop
        return False
    return task is not None and task.cancelling() > 0


def broker_error(doing: str, exc: BaseException, *, publishing: bool = False) -> BrokerError | None:
    """Renkei's error for an aio-pika/aiormq/socket one; None for an error that is not the broker's."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, aiormq.exceptions.PublishError):  # basic.return: no queue took it
        return PublishNotConfirmed(f"{doing}: returned as unroutable ({reply_text(exc, 'no route')}); "
                                   "declare the queue first")
    if isinstance(exc, aiormq.exceptions.DeliveryError):  # basic.nack
        return PublishNotConfirmed(f"{doing}: the broker nacked it; publish again")
    if isinstance(exc, TimeoutError):
        if publishing:
            return PublishNotConfirmed(f"{doing}: not confirmed in time; publish again")
        return BrokerUnavailable(f"{doing}: timed out")
    if isinstance(exc, (aiormq.exceptions.ChannelNotFoundEntity, aiormq.exceptions.ChannelPreconditionFailed)):
        if "inequivalent arg" in str(exc):  # made by an earlier renkei, or by hand
            return BrokerError(f"{doing}: {exc}; the queue exists with other arguments: stop the bus and run "
                               "`renkei queues migrate` (it keeps every message)")
        return BrokerError(f"{doing}: {exc}")
    if isinstance(exc, (aiormq.exceptions.AMQPConnectionError, aiormq.exceptions.ChannelInvalidStateError,
                        aiormq.exceptions.ChannelClosed, ConnectionError, OSError)):
        return BrokerUnavailable(f"{doing}: {type(exc).__name__}: {exc}")
    if isinstance(exc, aiormq.exceptions.AMQPError):
        return BrokerError(f"{doing}: {type(exc).__name__}: {exc}")
    if isinstance(exc, RuntimeError) and ("closed" in str(exc) or "not opened" in str(exc)):
        # aiormq: "<Connection ...> closed"; aio-pika: "Connection was not opened", while it reconnects
        return BrokerUnavailable(f"{doing}: the connection is closed (reconnecting)")
    return None


def reply_text(exc: BaseException, default: str) -> str:
    """What the broker said (the reply text of the frame an aiormq error carries)."""
    frame = getattr(exc, "frame", None)
    text = getattr(frame, "reply_text", None)
    return str(text) if text else default


