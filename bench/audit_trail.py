"""The SQLite audit trail as it grows: CPU per appended record and the time of a lookup, with the
lookups in sorted runs (bus.audit.lookup, the layout of a new trail) and with the two indexes of
a trail written before it (the reference run, in the same sitting).

    python -m bench.audit_trail                        # 400,000 records per layout
    python -m bench.audit_trail --records 2000000      # a million-record file's trail is ~8,000,000

For each layout, a fresh trail (`SqliteAuditStore`) is appended `delivered` events of synthetic
pseudonyms (random hex: message ids and subjects are keyed HMACs) in batches of 64, as a
deliverer's group commit writes them; every 8 records share a message id and a subject, as a
change's records do, and the records of 512 changes are interleaved, as the bus's processes
write them (a batch holds 64 changes' records, not 8 changes' records side by side). Per
segment of `--segment` records: the process's CPU per record (every thread: the runs' builder
included) and the wall clock. At the end, `--lookups` lookups of
random earlier messages (`by_message`) and residents (`by_subjects`, delivered events): their
p50 and max. The ratio row is the indexes' CPU per record over the runs', per segment. Only counts
and times are written: the events are made up.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import RESULTS, write
from bus.audit.events import AuditEvent, EventType
from bus.audit.log import AuditLog
from bus.audit.lookup import LEGACY_INDEXES
from bus.audit.sqlite_store import SqliteAuditStore

LAYOUTS = ("runs", "indexes")
_PER_CHANGE = 8
_WINDOW = 512  # changes whose records are interleaved (a window of 4,096 records)


def _legacy_file(path: Path) -> None:
    """A trail of the format before the runs: the two indexes present before the first append."""
    SqliteAuditStore(path).close()
    db = sqlite3.connect(path)
    db.executescript(LEGACY_INDEXES)
    db.close()


def _events(start: int, count: int, ids: list[tuple[str, str]], counts: list[int]) -> list[AuditEvent]:
    """Records `start`… of a trail where the changes of a window of _WINDOW are written
    interleaved, as the bus's processes write them: a batch of 64 holds 64 changes' records."""
    events = []
    for i in range(start, start + count):
        window, j = divmod(i, _WINDOW * _PER_CHANGE)
        change = window * _WINDOW + j % _WINDOW
        while len(ids) <= change:
            ids.append((secrets.token_hex(16), secrets.token_hex(16)))
            counts.append(0)
        counts[change] += 1
        message_id, subject = ids[change]
        events.append(AuditEvent(EventType.DELIVERED, message_id, "131016", subject, i, "jumin.idou", "jumin",
                                 "zei", "zei-default", "zei.jumin", None, (), f"r{i}"))
    return events


def run_layout(layout: str, records: int, segment: int, lookups: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="renkei-bench-audit-") as tmp:
        path = Path(tmp) / "audit.sqlite"
        if layout == "indexes":
            _legacy_file(path)
        store = SqliteAuditStore(path)
        log = AuditLog(store)
        ids: list[tuple[str, str]] = []
        counts: list[int] = []  # records written per change
        segments = []
        for start in range(0, records, segment):
            batch = _events(start, min(segment, records - start), ids, counts)  # made before the clock
            cpu, wall = time.process_time(), time.perf_counter()
            for at in range(0, len(batch), 64):
                log.append_screened(batch[at:at + 64])
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            segments.append({"records": start + len(batch), "cpu_us_per_record": round(cpu / len(batch) * 1e6, 2),
                             "wall_us_per_record": round(wall / len(batch) * 1e6, 2)})
            print(f"  {layout:8} {start + len(batch):>9} records: {segments[-1]['cpu_us_per_record']:7.2f} µs CPU"
                  f" / record", flush=True)
        store.lookups.wait()
        rng = random.Random(seed)
        by_message, by_subject = [], []
        for _ in range(lookups):
            change = rng.randrange(len(ids))
            message_id, subject = ids[change]
            started = time.perf_counter()
            found = store.by_message(message_id)
            by_message.append(time.perf_counter() - started)
            started = time.perf_counter()
            delivered = store.by_subjects([subject], events=(EventType.DELIVERED,))
            by_subject.append(time.perf_counter() - started)
            if len(found) != counts[change] or len(delivered) != counts[change]:
                raise SystemExit(f"{layout}: a lookup found {len(found)} / {len(delivered)} records,"
                                 f" not {counts[change]}")
        runs = store.lookups.built
        store.close()
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())

    def ms(values: list[float]) -> dict[str, float]:
        return {"p50": round(statistics.median(values) * 1000, 3), "max": round(max(values) * 1000, 3)}

    return {"layout": layout, "records": records, "segments": segments, "runs_built": runs,
            "by_message_ms": ms(by_message), "by_subjects_ms": ms(by_subject), "file_mb": round(size / 2**20, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_trail", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--segment", type=int, default=100_000, help="records per measured segment")
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--seed", type=int, default=29)
    parser.add_argument("--out", type=Path, default=RESULTS / "audit_trail.json")
    args = parser.parse_args(argv)
    results = {layout: run_layout(layout, args.records, args.segment, args.lookups, args.seed) for layout in LAYOUTS}
    runs, indexes = results["runs"], results["indexes"]
    ratio = [round(i["cpu_us_per_record"] / r["cpu_us_per_record"], 2)
             for r, i in zip(runs["segments"], indexes["segments"], strict=True)]
    growth = {layout: round(res["segments"][-1]["cpu_us_per_record"] / res["segments"][0]["cpu_us_per_record"], 2)
              for layout, res in results.items()}
    result = write(args.out, {"workload": {"records": args.records, "segment": args.segment, "batch": 64,
                                           "lookups": args.lookups},
                              "runs": list(results.values()), "indexes_over_runs_cpu": ratio,
                              "growth_last_over_first_segment": growth})
    print(f"indexes / runs, CPU per record by segment: {ratio}; growth {growth}")
    for res in results.values():
        message = res["by_message_ms"]
        print(f"  {res['layout']:8} by_message p50 {message['p50']} ms (max {message['max']}),"
              f" by_subjects p50 {res['by_subjects_ms']['p50']} ms; file {res['file_mb']} MB")
    print(json.dumps({"out": str(args.out), "timestamp": result["timestamp"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
