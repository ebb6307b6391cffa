"""Red, amber or green per destination, and what made it so; the history of the overview's chart.

A destination is
- **red** when it has unresolved dead letters, or a resident has waited on a failing
  delivery longer than `down_after` (the receiving system is down or refusing);
- **amber** when deliveries are being retried, changes are held behind a resident, or the
  backlog's oldest parked change waited longer than `backlog_age`;
- **green** otherwise.

`History` keeps a sample of every destination's backlog and counters every `sample_every`
seconds for `history_hours` (in memory, and in ``console-history.json`` in the state_dir
so a restart keeps the chart); rates are the differences of the delivered counter.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bus.console.data import DestinationStatus, StatusReport

__all__ = ["AMBER", "GREEN", "RED", "History", "Judgement", "judge"]

GREEN, AMBER, RED = "green", "amber", "red"


@dataclass(frozen=True, slots=True)
class Judgement:
    colour: str
    reasons: tuple[tuple[str, dict[str, object]], ...]  # (message key, values) for the page's language


def judge(d: DestinationStatus, *, down_after: float, backlog_age: float) -> Judgement:
    red: list[tuple[str, dict[str, object]]] = []
    amber: list[tuple[str, dict[str, object]]] = []
    f = d.delivery
    if f.dead:
        red.append(("reason.dead", {"n": f.dead}))
    age = f.oldest_parked_age or 0.0
    if f.retrying and age >= down_after:
        red.append(("reason.down", {"seconds": int(age)}))
    elif f.retrying:
        amber.append(("reason.retrying", {"n": f.retrying}))
    if f.held_messages:
        amber.append(("reason.held", {"n": f.held_messages, "residents": f.held_residents or 0}))
    if age >= backlog_age and not red:
        amber.append(("reason.backlog_age", {"seconds": int(age)}))
    if f.dead is None:
        amber.append(("reason.unknown", {}))
    if red:
        return Judgement(RED, tuple(red + amber))
    if amber:
        return Judgement(AMBER, tuple(amber))
    return Judgement(GREEN, (("reason.ok", {}),))


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    backlog: dict[str, int]  # destination → ready + in flight + retrying + held
    delivered: dict[str, int]  # destination → the delivered counter
    accepted: int  # every source's accepted, summed
    by_source: dict[str, int]  # source → its accepted counter


class History:
    def __init__(self, path: Path | None, *, keep_seconds: float) -> None:
        self.path = path
        self.keep = keep_seconds
        self.samples: deque[Sample] = deque()
        self._load()

    def add(self, report: StatusReport) -> None:
        backlog = {d.name: (d.queue.ready or 0) + (d.queue.in_flight or 0) + (d.delivery.retrying or 0)
                   + (d.delivery.held_messages or 0) for d in report.destinations}
        self.samples.append(Sample(report.at, backlog, {d.name: d.delivered for d in report.destinations},
                                   sum(s.accepted for s in report.sources),
                                   {s.name: s.accepted for s in report.sources}))
        while self.samples and self.samples[0].at < report.at - self.keep:
            self.samples.popleft()
        self._save()

    def rate(self, destination: str) -> float | None:
        """Deliveries per second between the last two samples."""
        return self._rate(lambda s: s.delivered.get(destination, 0))

    def source_rate(self, source: str) -> float | None:
        """Changes accepted per second between the last two samples."""
        return self._rate(lambda s: s.by_source.get(source, 0))

    def _rate(self, counter: Callable[[Sample], int]) -> float | None:
        if len(self.samples) < 2:
            return None
        a, b = self.samples[-2], self.samples[-1]
        return max(0, counter(b) - counter(a)) / (b.at - a.at) if b.at > a.at else None

    def series(self, names: list[str]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """(rate points, backlog points) over time, of these destinations summed."""
        rates: list[tuple[float, float]] = []
        backlog: list[tuple[float, float]] = []
        previous: Sample | None = None
        for s in self.samples:
            backlog.append((s.at, float(sum(s.backlog.get(n, 0) for n in names))))
            if previous is not None and s.at > previous.at:
                done = sum(max(0, s.delivered.get(n, 0) - previous.delivered.get(n, 0)) for n in names)
                rates.append((s.at, done / (s.at - previous.at)))
            previous = s
        return rates, backlog

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            rows = json.loads(self.path.read_text(encoding="utf-8"))
            cutoff = time.time() - self.keep
            for row in rows:
                if float(row["at"]) >= cutoff:
                    self.samples.append(Sample(float(row["at"]), dict(row["backlog"]), dict(row["delivered"]),
                                               int(row["accepted"]), dict(row.get("by_source", {}))))
        except (OSError, ValueError, KeyError, TypeError):
            self.samples.clear()  # an unreadable history starts afresh; it is only a chart

    def _save(self) -> None:
        if self.path is None:
            return
        rows = [{"at": s.at, "backlog": s.backlog, "delivered": s.delivered, "accepted": s.accepted,
                 "by_source": s.by_source} for s in self.samples]
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(rows), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # the chart survives a restart only when the state_dir is writable


def svg_chart(rates: list[tuple[float, float]], backlog: list[tuple[float, float]], *, width: int = 600,
              height: int = 140) -> str:
    """An inline SVG of rate (line) and backlog (area) over time: drawn on the server, no JavaScript."""
    points = rates + backlog
    if len(points) < 2:
        return ""
    t0 = min(t for t, _ in points)
    t1 = max(t for t, _ in points)
    span = max(t1 - t0, 1.0)

    def path(series: list[tuple[float, float]]) -> str:
        top = max((v for _, v in series), default=0.0) or 1.0
        return " ".join(f"{(t - t0) / span * width:.1f},{height - v / top * (height - 10):.1f}" for t, v in series)

    top_rate = max((v for _, v in rates), default=0.0)
    top_backlog = max((v for _, v in backlog), default=0.0)
    area = f"0,{height} {path(backlog)} {width},{height}" if backlog else ""
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
            f'aria-label="rate max {top_rate:.1f}/s, backlog max {top_backlog:.0f}">'
            f'<polygon class="backlog" points="{area}"/>'
            f'<polyline class="rate" fill="none" points="{path(rates)}"/></svg>')
