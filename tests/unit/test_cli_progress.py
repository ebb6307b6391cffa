"""Long CLI work shows progress: plain lines off a terminal (a bar with rate and ETA on one)."""

from __future__ import annotations

import io

from bus.cli.progress import counting_lines, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_progress_is_plain_lines_with_the_count_and_rate() -> None:
    out = io.StringIO()
    with progress("replaying", total=5, stream=out, every=0.0) as advance:
        for _ in range(5):
            advance(1)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("replaying: 1/5 (") and lines[-1].startswith("replaying: 5/5 (")
    assert all(line.endswith("/s)") for line in lines) and "\x1b[" not in out.getvalue()


def test_on_a_terminal_progress_is_a_bar_with_the_count() -> None:
    out = _Terminal()
    with progress("replaying", total=4, stream=out) as advance:
        for _ in range(4):
            advance(1)
    assert "replaying" in out.getvalue() and "4/4" in out.getvalue()


def test_an_export_advances_once_per_line_written() -> None:
    out = io.StringIO()
    steps: list[int] = []
    stream = counting_lines(out, steps.append)
    stream.write('{"a": 1}\n')
    stream.write('{"b": 2}\n{"c": 3}\n')
    assert sum(steps) == 3 and out.getvalue().count("\n") == 3
