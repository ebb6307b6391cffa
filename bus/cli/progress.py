"""Progress of long CLI work: a bar with rate and ETA on a terminal (rich), plain lines elsewhere.

    with progress("replaying", total=len(ids)) as advance:
        for ...:
            ...; advance(1)

On a terminal (standard error is a TTY) rich draws one bar: done/total, rate, ETA. Off a
terminal (a log, CI, a pipe) it prints a plain line at most every `every` seconds and at the
end: ``replaying: 40/100 (12.5/s)``. Output goes to standard error, so standard output stays
the command's result.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TextIO, cast

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["counting_lines", "progress"]


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "-/s")


@contextmanager
def progress(what: str, total: int | None = None, *, stream: TextIO | None = None,
             every: float = 2.0) -> Iterator[Callable[[int], None]]:
    out = stream or sys.stderr
    if out.isatty():
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(),
                   TimeRemainingColumn())
        with Progress(*columns, console=Console(file=out), transient=False) as bar:
            task = bar.add_task(what, total=total)

            def step(n: int = 1) -> None:
                bar.advance(task, n)

            yield step
        return
    done = 0
    started = last = time.monotonic()

    def line() -> str:
        rate = done / max(time.monotonic() - started, 1e-9)
        return f"{what}: {done}/{total} ({rate:.1f}/s)" if total else f"{what}: {done} ({rate:.1f}/s)"

    def advance(n: int = 1) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last >= every:
            last = now
            print(line(), file=out, flush=True)

    yield advance
    print(line(), file=out, flush=True)


class _CountingLines(io.TextIOBase):
    """A text stream that passes writes on to `out` and advances per line written."""

    def __init__(self, out: IO[str], advance: Callable[[int], None]) -> None:
        self._out = out
        self._advance = advance

    def write(self, text: str) -> int:
        lines = text.count("\n")
        if lines:
            self._advance(lines)
        return self._out.write(text)


def counting_lines(out: IO[str], advance: Callable[[int], None]) -> IO[str]:
    """`out`, advancing `advance` by each line written (an export's progress)."""
    return cast(IO[str], _CountingLines(out, advance))
