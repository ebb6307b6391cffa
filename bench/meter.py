"""The clock both sides share: from the first consumed message to the last one whose outputs
were all confirmed by the broker."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Meter", "SideResult"]


class Meter:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.started: float | None = None
        self.finished: float | None = None
        self._cpu_started = 0.0
        self.cpu_seconds = 0.0  # this process's CPU time over the same interval
        self.done_count = 0
        self.done = asyncio.Event()

    def start(self) -> None:
        """A message was consumed (the first call starts the clock)."""
        if self.started is None:
            self.started = time.perf_counter()
            self._cpu_started = time.process_time()

    def finish(self) -> None:
        """A message's outputs are all confirmed (the expected-th call stops the clock)."""
        self.done_count += 1
        if self.done_count == self.expected:
            self.finished = time.perf_counter()
            self.cpu_seconds = time.process_time() - self._cpu_started
            self.done.set()

    async def wait(self, within: float) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), within)
        except TimeoutError:
            raise RuntimeError(f"only {self.done_count} of {self.expected} messages were processed "
                               f"within {within:.0f} s") from None

    @property
    def seconds(self) -> float:
        if self.started is None or self.finished is None:
            raise RuntimeError("the meter has not finished")
        return self.finished - self.started


@dataclass(frozen=True)
class SideResult:
    """One side's run: its rate, and what the queues held afterwards (the proof of the work)."""

    side: str
    messages: int
    seconds: float
    cpu_seconds: float  # of this process while the clock ran (the broker's CPU is not in it)
    processed: int  # messages whose outputs were all confirmed
    outputs: int  # messages found in the output queues afterwards
    input_left: int  # messages left in the input queue afterwards (0: every one acked)

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "messages_per_s": round(self.messages_per_s, 1), "seconds": round(self.seconds, 3),
                "cpu_seconds": round(self.cpu_seconds, 3),
                "cpu_ms_per_message": round(1000 * self.cpu_seconds / self.messages, 3)}
