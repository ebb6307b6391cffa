"""A state file opened by several processes at once: the WAL switch waits for the others."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from bus.sqlite import LocalFile

SCHEMA = "CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)"


def _open(path: str, barrier: multiprocessing.synchronize.Barrier, ok: multiprocessing.Queue[str]) -> None:
    barrier.wait()
    try:
        with LocalFile(Path(path), schema=SCHEMA).tx() as db:
            db.execute("INSERT OR IGNORE INTO seen VALUES ('x')")
        ok.put("ok")
    except Exception as exc:  # reported to the test
        ok.put(f"{type(exc).__name__}: {exc}")


def test_six_processes_creating_one_state_file_at_once_all_open_it(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    for n in range(2):
        path = tmp_path / f"state-{n}.sqlite"
        barrier, answers = context.Barrier(6), context.Queue()
        workers = [context.Process(target=_open, args=(str(path), barrier, answers)) for _ in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert sorted(answers.get(timeout=5) for _ in workers) == ["ok"] * 6
