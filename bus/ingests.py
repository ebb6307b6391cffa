"""Bulk files being ingested, as `renkei status` and the console read them (adapters.sources.ingest
writes them): one JSON file per file and source under ``<state_dir>/ingest``, which is also the
file's checkpoint. Counts, rates and row numbers only: never a value of a record.

`read_progress(state_dir)` lists the running ones and those finished within a day, newest
first; a `running` file whose process is gone reads `interrupted` (it resumes when the file is
ingested again).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["IngestProgress", "ingest_dict", "progress_dir", "read_progress"]

_SHOWN_FOR = 24 * 3600.0  # a finished file's progress is shown for a day


def progress_dir(state_dir: Path) -> Path:
    """Where the checkpoints (and so the progress) of bulk files live in a state directory."""
    return state_dir / "ingest"


@dataclass
class IngestProgress:
    """Where one bulk file stands (the checkpoint, and what status and the console show)."""

    file: str
    source: str
    format: str
    kind: str
    digest: str
    total: int | None
    done: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    state: str = "running"
    resumed_from: int = 0
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)
    rejected_records: list[dict[str, Any]] = field(default_factory=list)
    #: rejected records by issue code and field path ("R401 /address_number"), all of them counted
    rejected_by: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Records per second in this run (since it started or resumed)."""
        return (self.done - self.resumed_from) / max(self.updated - self.started, 1e-9)

    @property
    def eta(self) -> float | None:
        """Seconds left at this rate; None when unknown."""
        if self.total is None or self.rate <= 0 or self.state != "running":
            return None
        return max(self.total - self.done, 0) / self.rate

    def counts(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicate": self.duplicate, "rejected": self.rejected}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate"] = round(self.rate, 1)
        data["eta_seconds"] = None if self.eta is None else round(self.eta, 1)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestProgress:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def read_progress(state_dir: Path, *, now: float | None = None) -> list[IngestProgress]:
    """The bulk files of a state directory: running ones, and those finished within a day,
    newest first; a `running` file whose process is gone reads `interrupted`."""
    now = time.time() if now is None else now
    found = []
    for path in sorted(progress_dir(state_dir).glob("*.json")):
        try:
            p = IngestProgress.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if p.state == "running" and not _alive(p.pid):
            p.state = "interrupted"
        if p.state == "running" or now - p.updated < _SHOWN_FOR:
            found.append(p)
    return sorted(found, key=lambda p: -p.updated)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ingest_dict(p: IngestProgress) -> dict[str, Any]:
    """One bulk file in `renkei status --json` (``ingests``): where it stands, no record's detail."""
    return {"file": p.file, "source": p.source, "format": p.format, "kind": p.kind, "state": p.state,
            "done": p.done, "total": p.total, "accepted": p.accepted, "duplicate": p.duplicate,
            "rejected": p.rejected, "rate_per_second": round(p.rate, 1),
            "eta_seconds": None if p.eta is None else round(p.eta, 1), "resumed_from": p.resumed_from,
            "started": p.started, "updated": p.updated, "pid": p.pid}
