"""Increase and decrease changes (増加・減少異動): people come onto and go off a roll.

Each handler takes the book and one roll, makes one change happen today, records it
through `Book.record`, and returns False when the roll has nobody it could happen to.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from bus.synthetic.book import Arrival, Book, Roll
from bus.synthetic.model import Address, Household, Person, age_on, relation
from bus.synthetic.names import ABROAD_COUNTRIES

__all__ = ["DECREASE", "INCREASE", "pick_resident"]

When = tuple[date, date | None, date]
_FOREIGN_TEMPLATES = ("foreign_single", "foreign_single", "foreign_family")


def pick_resident(book: Book, roll: Roll) -> Person | None:
    people = roll.residents
    return people[book.rng.randrange(len(people))] if people else None


def tennyu(book: Book, roll: Roll, template: str | None = None) -> bool:
    """転入: a household moves in from another municipality (前住所 set)."""
    arrival = roll.arrivals[0] if roll.arrivals and template is None else None
    if arrival is not None and arrival.moved_on <= book.today:
        roll.arrivals.popleft()
        house, previous = _transplant(book, roll, arrival), arrival.came_from
    else:
        house = book.factory.household(roll.code, book.today, template)
        previous = book.factory.address_elsewhere(roll.code)
    book.register(roll, house)
    when = book.dates(house.members, "notified")
    for m in house.members:
        book.record(m, "TENNYU", when, previous=previous)
    return True


def _transplant(book: Book, roll: Roll, arrival: Arrival) -> Household:
    """The same people as new entries of this roll: same 個人番号 and 住民票コード, new 宛名番号."""
    f = book.factory
    copies: dict[int, Person] = {}
    for old in arrival.people:
        new = f.person(roll.code, old.sex, old.birth_date, (old.family_name, old.family_name_kana),
                       old.nationality, old.employee)
        new.given_name, new.given_name_kana = old.given_name, old.given_name_kana
        new.personal_number, new.resident_code = old.personal_number, old.resident_code
        new.former_family_name = old.former_family_name
        new.former_family_name_kana = old.former_family_name_kana
        new.alias_name, new.alias_name_kana = old.alias_name, old.alias_name_kana
        new.birth_family, new.sibling_group = old.birth_family, old.sibling_group
        new.last_child = old.last_child
        new.last_effective = arrival.moved_on
        copies[id(old)] = new
    for old in arrival.people:
        new = copies[id(old)]
        new.spouse = copies.get(id(old.spouse)) if old.spouse is not None else None
        new.parents = tuple(copies[id(p)] for p in old.parents if id(p) in copies)
        if old.kin is not None and id(old.kin[0]) in copies:
            new.kin = (copies[id(old.kin[0])], old.kin[1])
    members = [copies[id(p)] for p in arrival.people]
    house = Household(f.serial(roll.code, "household"), roll.code, arrival.moving_to, members[0], members)
    house.relink()
    return house


def kokugai_tennyu(book: Book, roll: Roll, template: str | None = None) -> bool:
    """国外転入: a household arrives from abroad (foreign residents, or Japanese coming home)."""
    rng = book.rng
    if template is None and rng.random() < 0.45:
        template = _FOREIGN_TEMPLATES[rng.randrange(len(_FOREIGN_TEMPLATES))]
    house = book.factory.household(roll.code, book.today, template)
    book.register(roll, house)
    when = book.dates(house.members, "notified")
    for m in house.members:
        book.record(m, "KOKUGAI_TENNYU", when)
    return True


def shussei(book: Book, roll: Roll) -> bool:
    """出生: a child is born to a mother living in the household (子, or 子の子)."""
    today = book.today
    for _ in range(40):
        mother = pick_resident(book, roll)
        if mother is None:
            return False
        if mother.sex != "FEMALE" or not 18 <= age_on(mother.birth_date, today) <= 45:
            continue
        if (today - mother.last_child).days < 300:
            continue
        if mother.relationship not in ("SETAINUSHI", "TSUMA", "KO_NO_TSUMA", "KO"):
            continue
        house = mother.household
        assert house is not None
        father = mother.spouse if mother.spouse is not None and mother.spouse in house.members else None
        if mother.relationship == "KO" and father is None:
            continue
        when = book.dates([mother], "notified")  # 異動日 = the birth date
        child = book.factory.child(roll.code, mother, father, when[0])
        child.household = house
        house.members.append(child)
        child.relationship = relation(child, house.head) if house.head is not None else "KO"
        roll.add_person(child)
        book.record(child, "SHUSSEI", when)
        return True
    return False


def shokken_kisai(book: Book, roll: Roll) -> bool:
    """職権記載: a person found living here unregistered is recorded ex officio."""
    template = "single_young" if book.rng.random() < 0.7 else "single_middle"
    house = book.factory.household(roll.code, book.today, template)
    book.register(roll, house)
    when = book.dates(house.members, "ex_officio")
    for m in house.members:
        book.record(m, "SHOKKEN_KISAI", when)
    return True


def _leavers(book: Book, roll: Roll) -> list[Person] | None:
    """Who moves out: one grown-up who is not the householder, or the whole household."""
    p = pick_resident(book, roll)
    if p is None:
        return None
    house = p.household
    assert house is not None
    alone = p is not house.head and len(house.members) > 1 and age_on(p.birth_date, book.today) >= 18
    if alone and book.rng.random() < 0.7 and p.spouse not in house.members:
        return [p]
    if book.rng.random() < 0.5:  # half the time any household, whatever its size
        house = roll.households[book.rng.randrange(len(roll.households))]
    return list(house.members)


def _take_off(book: Book, roll: Roll, people: list[Person], reason: str, when: When,
              *, moved_to: Address | None = None, country: str | None = None) -> None:
    """Remove people from the roll and record the decrease; hand the household on if needed."""
    house = people[0].household
    assert house is not None
    for p in people:
        book.remove(roll, p)
    whole = len(people) == len(house.members)
    for p in people:
        book.record(p, reason, when, moved_to=moved_to, country=country)
    if whole:
        roll.drop_household(house)
        return
    for p in people:
        book.leave_household(roll, p)
    if house.head in people:
        book.change_head(house, book.choose_head(house, book.today), when)


def tenshutsu(book: Book, roll: Roll) -> bool:
    """転出: moving to another municipality (転出先住所 set; may be notified ahead)."""
    people = _leavers(book, roll)
    if people is None:
        return False
    when = book.dates(people, "ahead")
    others = [c for c in book.rolls if c != roll.code]
    if others and book.rng.random() < 0.25:
        target = book.rolls[others[book.rng.randrange(len(others))]]
        destination = book.factory.address(target.info)
        house = people[0].household
        assert house is not None
        target.arrivals.append(Arrival(when[0], people, house.address, destination))
    else:
        destination = book.factory.address_elsewhere(roll.code)
    _take_off(book, roll, people, "TENSHUTSU", when, moved_to=destination)
    return True


def kokugai_tenshutsu(book: Book, roll: Roll) -> bool:
    """国外転出: moving abroad (転出先国 set)."""
    people = _leavers(book, roll)
    if people is None:
        return False
    rng = book.rng
    nat = people[0].nationality
    country = nat if nat is not None and rng.random() < 0.8 else rng.choice(ABROAD_COUNTRIES)
    _take_off(book, roll, people, "KOKUGAI_TENSHUTSU", book.dates(people, "ahead"), country=country)
    return True


def shibou(book: Book, roll: Roll) -> bool:
    """死亡: mostly the elderly; a householder's death hands the household on (世帯主変更)."""
    candidates = [pick_resident(book, roll) for _ in range(6)]
    people = [p for p in candidates if p is not None]
    if not people:
        return False
    p = min(people, key=lambda q: q.birth_date)
    house = p.household
    assert house is not None
    undo = None if p is house.head else {"_restore": True}
    if undo is not None and len(house.members) > 1:
        when = book.dates([p], "death")
        book.remove(roll, p)
        book.record(p, "SHIBOU", when, undo=undo)
        book.leave_household(roll, p)
        return True
    _take_off(book, roll, [p], "SHIBOU", book.dates([p], "death"))
    return True


def shokken_shojo(book: Book, roll: Roll) -> bool:
    """職権消除: a registered adult found not to live here is removed ex officio."""
    p = pick_resident(book, roll)
    if p is None or age_on(p.birth_date, book.today) < 18:
        return False
    house = p.household
    assert house is not None
    when = book.dates([p], "ex_officio")
    if p is not house.head and len(house.members) > 1:
        book.remove(roll, p)
        book.record(p, "SHOKKEN_SHOJO", when, undo={"_restore": True})
        book.leave_household(roll, p)
        return True
    _take_off(book, roll, [p], "SHOKKEN_SHOJO", when)
    return True


INCREASE: dict[str, Callable[[Book, Roll], bool]] = {
    "TENNYU": tennyu,
    "KOKUGAI_TENNYU": kokugai_tennyu,
    "SHUSSEI": shussei,
    "SHOKKEN_KISAI": shokken_kisai,
}
DECREASE: dict[str, Callable[[Book, Roll], bool]] = {
    "TENSHUTSU": tenshutsu,
    "KOKUGAI_TENSHUTSU": kokugai_tenshutsu,
    "SHIBOU": shibou,
    "SHOKKEN_SHOJO": shokken_shojo,
}
