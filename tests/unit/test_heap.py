"""settle_heap: the collector's settings for a long-running bus process."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bus.heap import GC_THRESHOLDS, settle_heap


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
