"""Synthetic 支援措置 (jumin.shien): set, extended and released without a 異動.

    measures = SupportMeasures(random.Random(1))
    for record in Registry(seed=1).events(1000):
        feed(record)
        for measure in measures.after(record):      # jumin.shien records, in order
            feed(measure)

A 支援措置 is the registry's (住民記録 standard 1.1.16, j160; 3.1, j410): after a change of a
resident, now and then one is set for them (a 仮支援措置 one time in five, 1.1.16), for a year
(開始年月日 the change's 処理日, 終了年月日 a year later less a day), restricting the 閲覧 and the
写し of the 住民票 and, for most, of the 戸籍の附票; and now and then a measure set earlier is
extended (a new 終了年月日) or released (本解除: 3.1's 一時解除 is never passed on, so never
made). Each record follows the latest change of its resident seen so far (its 履歴番号), and
`event_number` counts the resident's 支援措置 events from 1 — the message's identity
(bus.stages.intake). No name or address: only the 宛名番号 and 世帯番号 of the resident.

`active(address_number)` says whether a measure is in force for the resident, so a v2 feed
can set `support_measure` on their later changes (bus.demo).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

__all__ = ["SupportMeasures"]


@dataclass(slots=True)
class _Resident:
    municipality: str
    household: str
    history: int
    day: date
    events: int = 0
    measure: dict[str, Any] | None = None  # in force: set or extended, not released


class SupportMeasures:
    """Makes jumin.shien records for the residents of a stream of jumin.idou records (v1 or v2).

    `rate`: the chance that a change is followed by a new 支援措置 for its resident, and also
    the chance that one measure in force is then extended or released."""

    def __init__(self, rng: random.Random, rate: float = 1 / 60) -> None:
        self._rng = rng
        self._rate = rate
        self._residents: dict[str, _Resident] = {}

    def active(self, address_number: str) -> bool:
        resident = self._residents.get(address_number)
        return resident is not None and resident.measure is not None

    def after(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The 支援措置 records that follow `record` (a change), in the order to send them."""
        number = str(record["address_number"])
        change = record.get("change") or {}
        resident = self._residents.setdefault(number, _Resident(
            str(record["municipality_code"]), str(record["household_number"]), 0, change["processed_date"]))
        resident.household, resident.history = str(record["household_number"]), int(record["history_number"])
        resident.day = change["processed_date"]
        out: list[dict[str, Any]] = []
        in_force = [n for n, r in self._residents.items() if r.measure is not None and n != number]
        if in_force and self._rng.random() < self._rate:
            other = in_force[self._rng.randrange(len(in_force))]
            out.append(self._next(other, resident.day, "ENCHO" if self._rng.random() < 0.5 else "KAIJO"))
        if self._rng.random() < self._rate and record.get("resident_status") in ("RESIDENT", None):
            out.append(self._next(number, resident.day, "ENCHO" if resident.measure is not None else "SETTEI"))
        return out

    def _next(self, number: str, today: date, action: str) -> dict[str, Any]:
        resident = self._residents[number]
        resident.events += 1
        if action == "SETTEI":
            measure: dict[str, Any] = {
                "action": action, "provisional": self._rng.random() < 0.2, "start_date": today,
                "end_date": _a_year_on(today),
                "restricted": {"etsuran": True, "juminhyo_utsushi": True, "fuhyo_utsushi": self._rng.random() < 0.8},
            }
        else:
            assert resident.measure is not None
            start = resident.measure["start_date"]
            end = max(today, start) if action == "KAIJO" else _a_year_on(max(resident.measure["end_date"], today))
            measure = {**resident.measure, "action": action, "provisional": False, "end_date": end}
        resident.measure = None if action == "KAIJO" else measure
        return {
            "municipality_code": resident.municipality,
            "address_number": number,
            "history_number": resident.history,
            "event_number": resident.events,
            "integrated_address_number": None,
            "household_number": resident.household,
            "measure": {**measure, "restricted": dict(measure["restricted"])},
            "processed_date": max(today, measure["start_date"]),
        }


def _a_year_on(day: date) -> date:
    """The last day of a year's period from `day` (2025-06-02 → 2026-06-01)."""
    try:
        return day.replace(year=day.year + 1) - timedelta(days=1)
    except ValueError:  # 29 February
        return date(day.year + 1, 2, 28)
