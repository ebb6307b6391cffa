"""The registry's mutable state and the primitives every change is made of.

`Book` holds one `Roll` (住民基本台帳 of one municipality) per municipality, the clock
(処理日 advances every `events_per_day` events), and the factory. A change is recorded
with `Book.record`, which bumps the person's 履歴番号 by one and queues the jumin.idou
record on the roll; nothing else writes history.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from bus.synthetic.factory import Factory
from bus.synthetic.model import Address, Household, Person, age_on
from bus.synthetic.places import Municipality
from bus.synthetic.records import to_record

__all__ = ["Arrival", "Book", "Roll"]

_DAY = timedelta(days=1)


@dataclass(slots=True)
class Arrival:
    """People who moved out of one roll to another roll of the same registry: a future 転入."""

    moved_on: date
    people: list[Person]
    came_from: Address
    moving_to: Address  # the 転出先住所 they gave, where they will live


@dataclass(eq=False, slots=True)
class Roll:
    """The registry of one municipality."""

    info: Municipality
    residents: list[Person] = field(default_factory=list)
    households: list[Household] = field(default_factory=list)
    splits: list[Household] = field(default_factory=list)  # households made by 世帯分離
    # whose last change may still be cancelled (only recent changes are: the oldest fall off)
    undoable: deque[Person] = field(default_factory=lambda: deque(maxlen=2000))
    arrivals: deque[Arrival] = field(default_factory=deque)
    pending: deque[dict[str, Any]] = field(default_factory=deque)  # records not yet handed out

    @property
    def code(self) -> str:
        return self.info.code

    def add_person(self, p: Person) -> None:
        p.index = len(self.residents)
        self.residents.append(p)

    def drop_person(self, p: Person) -> None:
        last = self.residents.pop()
        if last is not p:
            self.residents[p.index] = last
            last.index = p.index
        p.index = -1

    def add_household(self, h: Household) -> None:
        h.index = len(self.households)
        self.households.append(h)

    def drop_household(self, h: Household) -> None:
        last = self.households.pop()
        if last is not h:
            self.households[h.index] = last
            last.index = h.index
        h.index = -1

    def has_household(self, h: Household) -> bool:
        return 0 <= h.index < len(self.households) and self.households[h.index] is h


class Book:
    """State shared by the change handlers: rolls, clock, factory."""

    def __init__(self, factory: Factory, rolls: dict[str, Roll], start: date, events_per_day: int) -> None:
        self.factory = factory
        self.rng = factory.rng
        self.rolls = rolls
        self.start = start
        self.events_per_day = events_per_day
        self.today = start
        self._ticks = 0

    def tick(self) -> None:
        """One event happened: the 処理日 moves on once every `events_per_day` events."""
        self._ticks += 1
        if self._ticks % self.events_per_day == 0:
            self.today += _DAY

    # --- dates ---------------------------------------------------------------------------

    def dates(self, people: list[Person], how: str) -> tuple[date, date | None, date]:
        """(異動日, 届出日, 処理日) of a change to `people` made today.

        how: ``notified`` (届出: within 14 days after the fact), ``ex_officio`` (職権: no
        届出日), ``ahead`` (転出: notified today, effective up to 14 days either side),
        ``death`` (死亡届: within 7 days). 異動日 never goes back before an earlier change of
        the same person, so each person's dates follow their 履歴番号.
        """
        rng, today = self.rng, self.today
        floor = max(max(p.last_effective for p in people), max(p.birth_date for p in people))
        floor = min(floor, today)
        if how == "ahead":
            effective = max(floor, today + timedelta(days=rng.randint(-14, 14)))
            return effective, today, today
        back = {"notified": 14, "ex_officio": 30, "death": 7}[how]
        effective = max(floor, today - timedelta(days=rng.randint(0, back)))
        if how == "ex_officio":
            return effective, None, today
        notified = date.fromordinal(rng.randint(effective.toordinal(), today.toordinal()))
        return effective, notified, today

    # --- history -------------------------------------------------------------------------

    def record(
        self,
        p: Person,
        reason: str,
        when: tuple[date, date | None, date],
        *,
        cancelled: int | None = None,
        previous: Address | None = None,
        moved_to: Address | None = None,
        country: str | None = None,
        undo: dict[str, Any] | None = None,
        emit: bool = True,
    ) -> None:
        """Append one change to `p`'s history and queue its record (unless `emit` is False)."""
        effective, notified, processed = when
        p.history_number += 1
        p.last_change = (reason, effective, notified, processed, cancelled)
        p.last_extra = (previous, moved_to, country)
        if effective > p.last_effective:
            p.last_effective = effective
        roll = self.rolls[p.municipality]
        if undo is not None:
            undo["_at"] = p.history_number
            roll.undoable.append(p)
        p.undo = undo
        if emit:
            roll.pending.append(to_record(p))

    # --- registration --------------------------------------------------------------------

    def register(self, roll: Roll, house: Household) -> None:
        """Add a household and its members to a roll (no history written)."""
        roll.add_household(house)
        for m in house.members:
            m.household = house
            m.status = "RESIDENT"
            roll.add_person(m)

    def remove(self, roll: Roll, p: Person) -> None:
        """Take a person off the roll (消除); their household keeps them only if it is gone too."""
        p.status = "REMOVED"
        roll.drop_person(p)

    def leave_household(self, roll: Roll, p: Person) -> None:
        house = p.household
        assert house is not None
        house.members.remove(p)
        if not house.members and roll.has_household(house):
            roll.drop_household(house)

    def choose_head(self, house: Household, on: date) -> Person:
        """The member who takes over a household: the spouse, else the oldest adult."""
        old = house.head
        if old is not None and old.spouse is not None and old.spouse in house.members:
            if age_on(old.spouse.birth_date, on) >= 18:
                return old.spouse
        adults = [m for m in house.members if age_on(m.birth_date, on) >= 18] or house.members
        return min(adults, key=lambda m: m.birth_date)

    def change_head(self, house: Household, new_head: Person, when: tuple[date, date | None, date]) -> None:
        """世帯主変更: every member gets a record with their new 続柄.

        `when` is the date of what caused it (a death, a removal); a member born or changed
        after that moves 異動日 forward, so nobody's history goes back in time.
        """
        effective, notified, processed = when
        floor = max(max(m.last_effective for m in house.members), max(m.birth_date for m in house.members))
        if floor > effective:
            effective = min(floor, processed)
            notified = None if notified is None else max(notified, effective)
            when = (effective, notified, processed)
        house.head = new_head
        house.relink()
        for m in house.members:
            self.record(m, "SETAINUSHI_HENKO", when)

    def baseline(self, roll: Roll, house: Household) -> None:
        """History 1 of an initial household: 転入 on a past date, or 出生 for those born later."""
        f, start = self.factory, self.start
        oldest = min(m.birth_date for m in house.members)
        lo = max(oldest + timedelta(days=18 * 365), start - timedelta(days=40 * 365))
        moved_in = f.past_date(lo, start - _DAY)
        came_from = f.address_elsewhere(roll.code)
        for m in house.members:
            if m.birth_date > moved_in:
                effective, reason, previous = m.birth_date, "SHUSSEI", None
            else:
                effective, reason, previous = moved_in, "TENNYU", came_from
            processed = min(effective + f.days(0, 14), start - _DAY)
            processed = max(processed, effective)
            notified = f.past_date(effective, processed)
            # baselines are history, not news: `Registry.snapshot()` shows them
            self.record(m, reason, (effective, notified, processed), previous=previous, emit=False)
