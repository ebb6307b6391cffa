"""`renkei demo` runs the bus in several processes over the one embedded broker file (issue 10:
both cores): every delivery is still right in each layout, a process of the bus that dies fails
the demo loudly instead of hanging, and nothing the demo started is left running after it,
however it ends (done, Ctrl-C, killed)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus.cli.demo import render
from bus.demo import DemoOptions, DemoResult, run_demo
from bus.demo_procs import split

CHILD_MODULES = ("bus.demo_procs", "adapters.simulators.apart")


def _stat(pid: str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, pgrp, session, ...)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _running(*, parent: int | None = None, session: int | None = None) -> list[str]:
    """The live processes of the demo's children (not zombies): of `parent`, or in `session`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat(pid)
        if fields is None or fields[0] == "Z":
            continue
        if parent is not None and int(fields[1]) != parent:
            continue
        if session is not None and int(fields[3]) != session:
            continue
        command = _cmdline(pid)
        if any(module in command for module in CHILD_MODULES):
            found.append(f"{pid}: {command}")
    return found


def _options(tmp_path: Path, processes: int, changes: int = 60) -> DemoOptions:
    return DemoOptions(changes=changes, out=tmp_path / "demo", seed=5, feeders=8, idle_timeout=120,
                       processes=processes, log_file=tmp_path / "children.log", support_rate=0.05)


def test_the_bus_is_split_into_the_processes_asked_for() -> None:
    names = ["zei", "kokuho", "kaigo", "togo", "chukan"]
    assert split(names, 1) == []
    assert split(names, 2) == [(False, tuple(sorted(names)))]
    assert split(names, 3) == [(True, ()), (False, tuple(sorted(names)))]
    four = split(names, 5)  # the router alone, the deliverers dealt over three
    assert four[0] == (True, ())
    dealt = [name for router, group in four[1:] for name in group]
    assert sorted(dealt) == sorted(names) and len(four) == 4 and not any(router for router, _ in four[1:])


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_every_delivery_is_right_whatever_the_number_of_processes(tmp_path: Path, processes: int) -> None:
    result = asyncio.run(run_demo(_options(tmp_path, processes)))
    assert result.ok, render(result)
    assert result.processes == processes
    assert sum(t.delivered for t in result.destinations) == sum(t.expected for t in result.destinations) > 60
    if processes > 1:  # the other processes did the delivering: they used CPU and logged to the file given
        assert result.others_cpu_seconds is not None and result.others_cpu_seconds > 0
        assert '"bus started"' in (tmp_path / "children.log").read_text(encoding="utf-8")
    else:
        assert result.others_cpu_seconds is None
    assert _running(parent=os.getpid()) == []  # nothing left running after the demo


@pytest.mark.parametrize("processes", [2, 3])
def test_a_killed_process_of_the_bus_fails_the_demo_loudly(tmp_path: Path, processes: int) -> None:
    killed: list[int] = []

    def kill_a_child(line: str) -> None:  # the first progress line: the bus is flowing
        if killed:
            return
        children = _running(parent=os.getpid())
        bus = [int(c.split(":")[0]) for c in children if "bus.demo_procs" in c]
        os.kill(bus[-1], signal.SIGKILL)  # the deliverers' process
        killed.append(bus[-1])

    started = time.monotonic()
    result = asyncio.run(run_demo(_options(tmp_path, processes, changes=4000), progress=kill_a_child))
    assert killed, "the demo ended before a progress line: too few changes to kill a process mid-flow"
    assert not result.ok
    assert not result.idle
    assert any(f"pid {killed[0]};" in f and "killed by SIGKILL" in f for f in result.failures), result.failures
    text = render(result)
    assert f"FAILED: the bus's process {processes} (pid {killed[0]}; the deliverers of " in text
    assert text.splitlines()[-1].startswith("FAILED")
    assert time.monotonic() - started < 100  # it says so at once, not after waiting `idle_timeout` for a drain
    assert _running(parent=os.getpid()) == []


def test_a_failed_process_fails_the_summary() -> None:
    result = DemoResult(DemoOptions(changes=1), processes=2)
    result.failures.append("the bus's process 2 (pid 7; the deliverers of zei) ended while the bus ran (exit status 1)")
    assert not result.ok
    text = render(result)
    assert "FAILED: the bus's process 2 (pid 7; the deliverers of zei) ended while the bus ran (exit status 1)" in text
    assert "bus: 2 processes, the intake and the router in this one" in text
    assert text.splitlines()[-1].startswith("FAILED")


@pytest.mark.parametrize("how", ["kill -9 the demo", "SIGTERM the demo", "Ctrl-C"])
def test_nothing_the_demo_started_outlives_it(tmp_path: Path, how: str) -> None:
    demo = subprocess.Popen(  # a session of its own: what it leaves is found by session id
        [sys.executable, "-m", "bus.cli", "demo", "--changes", "4000", "--processes", "3",
         "--out", str(tmp_path / "demo")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert demo.stderr is not None
        line = demo.stderr.readline()
        while line and not line.startswith("  sent "):  # a progress line: every process is running
            line = demo.stderr.readline()
        assert line, "the demo ended before its first progress line"
        assert len(_running(session=demo.pid)) == 3  # the router, the deliverers, the simulators
        if how == "Ctrl-C":
            os.killpg(demo.pid, signal.SIGINT)  # the terminal sends it to every process of the group
        else:
            demo.send_signal(signal.SIGKILL if how.startswith("kill") else signal.SIGTERM)
        demo.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _running(session=demo.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _running(session=demo.pid) == []
    finally:
        if demo.poll() is None:
            demo.kill()
        with_pids = [int(p.split(":")[0]) for p in _running(session=demo.pid)]
        for pid in with_pids:  # only if the test failed: leave nothing behind
            os.kill(pid, signal.SIGKILL)
