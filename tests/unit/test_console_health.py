"""Red, amber, green and why; the chart's history (rates from counters, kept across a restart)."""

from __future__ import annotations

from pathlib import Path

from bus.console.health import History, judge, svg_chart
from bus.status import DeadLetterSummary, DeliveryFigures, DestinationStatus, QueueFigures, SourceStatus, StatusReport


def _dest(delivered: int = 0, **delivery: object) -> DestinationStatus:
    return DestinationStatus("zei", "http", QueueFigures("renkei.zei", 2, 1, 1), delivered=delivered,
                             delivery=DeliveryFigures(**delivery))  # type: ignore[arg-type]


def _report(at: float, delivered: int, accepted: int) -> StatusReport:
    return StatusReport(at=at, broker="embedded", where="-", intake=QueueFigures("renkei.intake", 0, 0, 1),
                        dead_letters=DeadLetterSummary(), destinations=[_dest(delivered)],
                        sources=[SourceStatus("jumin", accepted=accepted)])


def test_dead_letters_or_a_long_failure_are_red_retries_and_holds_amber_else_green() -> None:
    assert judge(_dest(), down_after=60, backlog_age=300).colour == "green"
    dead = judge(_dest(dead=3), down_after=60, backlog_age=300)
    assert dead.colour == "red" and ("reason.dead", {"n": 3}) in dead.reasons
    down = judge(_dest(retrying=2, oldest_parked_age=61.0), down_after=60, backlog_age=300)
    assert down.colour == "red" and down.reasons[0] == ("reason.down", {"seconds": 61})
    retrying = judge(_dest(retrying=2, oldest_parked_age=5.0), down_after=60, backlog_age=300)
    assert retrying.colour == "amber" and retrying.reasons == (("reason.retrying", {"n": 2}),)
    held = judge(_dest(held_messages=4, held_residents=1), down_after=60, backlog_age=300)
    assert held.colour == "amber" and held.reasons == (("reason.held", {"n": 4, "residents": 1}),)
    unknown = judge(_dest(dead=None, retrying=None, held_messages=None, held_residents=None, oldest_parked_age=None),
                    down_after=60, backlog_age=300)
    assert unknown.colour == "amber" and unknown.reasons == (("reason.unknown", {}),)


def test_rates_come_from_the_counters_between_samples_and_the_history_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "console-history.json"
    history = History(path, keep_seconds=3600)
    assert history.rate("zei") is None
    for i, (delivered, accepted) in enumerate([(0, 0), (50, 40), (150, 60)]):
        history.add(_report(1_000_000_000 + 10 * i, delivered, accepted))
    assert history.rate("zei") == 10.0 and history.source_rate("jumin") == 2.0
    rates, backlog = history.series(["zei"])
    assert [v for _, v in rates] == [5.0, 10.0] and [v for _, v in backlog] == [3.0, 3.0, 3.0]
    assert "<svg" in svg_chart(rates, backlog) and svg_chart([], []) == ""
    again = History(path, keep_seconds=10**10)
    assert len(again.samples) == 3 and again.rate("zei") == 10.0
    assert len(History(path, keep_seconds=60).samples) == 0  # older than what is kept: dropped
