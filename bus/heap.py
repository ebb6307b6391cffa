"""The garbage collector, set for a long-running bus process.

A bus process holds a large, long-lived heap from startup (the catalog's schemas, the routes'
compiled CEL programs, lxml proxies) and makes many short-lived objects per message (asyncio
futures, envelopes, records), a few of them in reference cycles (exceptions, futures).
With CPython's default thresholds (700, 10, 10) the collector ran ~140 µs per routed change
in the pipeline benchmark, most of it full collections walking the startup heap again.

`settle_heap()`, once the process is set up: collect, move everything alive into the
permanent generation (`gc.freeze`: never scanned again, and no copy-on-write in forked
workers), and collect the young generation after 50,000 allocations instead of 700 (a few
megabytes at most). Cycles are still collected, only in fewer, larger passes.

`limit_malloc_arenas()`, before the process starts its threads: glibc's malloc gives threads
arenas of their own, up to eight per core, and memory freed in one arena is not reused by
another. A bus process's SQLite connections run their transactions on the event loop's thread
or on a worker thread, so their page caches and statements end up spread over several arenas:
with `[bus] inline_writes` a bulk file's router and deliverers each held 20–30 MB more than
with every write in the thread (bench/README.md, stop 26). Two arenas take that back. The
environment's own `MALLOC_ARENA_MAX`, when set, is glibc's and stays as it is; off glibc
nothing is done.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys

__all__ = ["GC_THRESHOLDS", "MALLOC_ARENAS", "limit_malloc_arenas", "settle_heap"]

#: gen0 after 50,000 net allocations; gen1 after 20 of those; gen2 after 10 gen1 collections
#: (and CPython's own rule: only when the survivors have grown by a quarter)
GC_THRESHOLDS = (50_000, 20, 10)

#: glibc malloc arenas a bus process may use (its default on two cores: 16)
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def settle_heap() -> None:
    """Call once the process has loaded what it keeps (after `Bus.start`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas` for the threads started from now on; whether it was
    set (False: not glibc, or MALLOC_ARENA_MAX is set in the environment and rules)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # musl and others: no such library or no mallopt
        return False
