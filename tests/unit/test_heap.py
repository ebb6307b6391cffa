"""settle_heap and limit_malloc_arenas: the collector's and malloc's settings for a long-running bus
process."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.heap import GC_THRESHOLDS, MALLOC_ARENAS, limit_malloc_arenas, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_settling_freezes_what_is_alive_and_collects_the_young_generation_less_often() -> None:
    kept = [object() for _ in range(10)]
    settle_heap()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() >= len(kept)
    assert GC_THRESHOLDS[0] > 700  # CPython's default: the point of it


@pytest.mark.usefixtures("restored_gc")
def test_cycles_made_after_settling_are_still_collected() -> None:
    settle_heap()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    alive = gc.get_objects()
    assert any(o is a for o in alive)
    del a, b, alive
    assert gc.collect() >= 2  # the cycle is found and freed: frozen objects are not all there is


_ARENAS = """
import ctypes, sys, threading
from bus.heap import limit_malloc_arenas
if sys.argv[1] == "limit":
    assert limit_malloc_arenas()
together = threading.Barrier(6)
def work():
    kept = [bytearray(200_000) for _ in range(20)]  # malloc'd by this thread, past the small-object pool
    together.wait()  # all alive at once: no thread's arena is free for another to take
    del kept
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def test_a_bus_process_caps_its_malloc_arenas_and_the_environment_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    assert platform.libc_ver()[0] == "glibc"  # Debian's: what the cap is for
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}

    def arenas(mode: str, **extra: str) -> int:
        done = subprocess.run([sys.executable, "-c", _ARENAS, mode], env={**env, **extra}, capture_output=True,
                              text=True, check=True, cwd=Path(__file__).resolve().parents[2])
        return done.stderr.count("Arena ")

    assert arenas("default") > MALLOC_ARENAS  # glibc alone: an arena for each thread, up to 8 a core
    assert 1 <= arenas("limit") <= MALLOC_ARENAS
    monkeypatch.setenv("MALLOC_ARENA_MAX", "5")
    assert limit_malloc_arenas() is False  # the environment's own setting is glibc's


def test_the_bus_caps_them_before_it_starts_a_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bus.app
    from bus.settings import BusSettings, Settings

    calls: list[int] = []
    monkeypatch.setattr(bus.app, "limit_malloc_arenas", lambda: calls.append(threading.active_count()) or True)
    before = threading.active_count()
    bus.app.Bus(Settings(bus=BusSettings(state_dir=tmp_path, pseudonym_key=b"k" * 32)), sinks={})
    assert calls == [before]
