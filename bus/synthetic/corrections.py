"""Corrections (訂正・修正異動): the person stays on the roll and something about them changes.

Same contract as bus.synthetic.moves: `handler(book, roll) -> bool`, False when nobody on
the roll fits. Person-level corrections record an `undo` so that a later 異動の取消し
(TORIKESHI) can cancel them and restore the earlier state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from bus.synthetic.book import Book, Roll
from bus.synthetic.model import Household, Person, age_on
from bus.synthetic.moves import pick_resident
from bus.synthetic.names import GIVEN_NAMES, NAME_VARIANTS
from bus.synthetic.places import BUILDINGS

__all__ = ["CORRECTION"]

_NAME_FIELDS = ("family_name", "family_name_kana", "given_name", "given_name_kana")
#: given names written differently with the same reading (誤記修正 candidates)
_HOMOPHONES: dict[tuple[str, str], list[str]] = {}
for _sex, _cohorts in GIVEN_NAMES.items():
    for _names in _cohorts.values():
        for _name, _kana in _names:
            _same = _HOMOPHONES.setdefault((_sex, _kana), [])
            if _name not in _same:
                _same.append(_name)


def _save(p: Person, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: getattr(p, n) for n in names}


def _find(book: Book, roll: Roll, fits: Callable[[Person], bool], tries: int = 40) -> Person | None:
    for _ in range(tries):
        p = pick_resident(book, roll)
        if p is None:
            return None
        if fits(p):
            return p
    return None


def _house(p: Person) -> Household:
    assert p.household is not None
    return p.household


def tenkyo(book: Book, roll: Roll) -> bool:
    """転居: the whole household moves within the municipality (前住所 = the old address)."""
    p = pick_resident(book, roll)
    if p is None:
        return False
    house = _house(p)
    previous = house.address
    while house.address == previous:
        house.address = book.factory.address(roll.info)
    when = book.dates(house.members, "notified")
    for m in house.members:
        book.record(m, "TENKYO", when, previous=previous)
    return True


def shimei_henko(book: Book, roll: Roll) -> bool:
    """氏名変更: back to the birth 氏 (divorce), a new 氏 (adoption), or a new 名 (court permission)."""
    p = _find(book, roll, lambda q: q.nationality is None and age_on(q.birth_date, book.today) >= 15)
    if p is None:
        return False
    undo = _save(p, (*_NAME_FIELDS, "birth_family"))
    roll_ = book.rng.random()
    if p.birth_family is not None and roll_ < 0.5:
        p.family_name, p.family_name_kana = p.birth_family
        p.birth_family = None
    elif roll_ < 0.8:
        old = p.family_name
        while p.family_name == old:
            p.family_name, p.family_name_kana = book.factory.family_name()
    else:
        old = p.given_name
        while p.given_name == old:
            p.given_name, p.given_name_kana = book.factory.given_name(p.sex, p.birth_date)
    book.record(p, "SHIMEI_HENKO", book.dates([p], "notified"), undo=undo)
    return True


def keibi_shusei(book: Book, roll: Roll) -> bool:
    """軽微な修正: the 方書 (building and room) of a household's address is corrected."""
    p = pick_resident(book, roll)
    if p is None:
        return False
    house = _house(p)
    rng = book.rng
    building: str | None = f"{rng.choice(BUILDINGS)}{rng.randint(1, 12)}0{rng.randint(1, 9)}号室"
    if house.address.building is not None and rng.random() < 0.3:
        building = None  # 方書 removed
    house.address = dataclasses.replace(house.address, building=building)
    when = book.dates(house.members, "notified")
    for m in house.members:
        book.record(m, "KEIBI_SHUSEI", when)
    return True


def shokken_shusei(book: Book, roll: Roll) -> bool:
    """職権修正: the office corrects a wrongly entered birth date."""
    p = _find(book, roll, lambda q: age_on(q.birth_date, book.today) >= 1)
    if p is None:
        return False
    undo = _save(p, ("birth_date",))
    p.birth_date = p.birth_date + book.factory.days(1, 40) * (1 if book.rng.random() < 0.5 else -1)
    when = book.dates([p], "ex_officio")
    p.birth_date = min(p.birth_date, when[0])
    book.record(p, "SHOKKEN_SHUSEI", when, undo=undo)
    return True


def _variant(p: Person) -> tuple[str, str] | None:
    """(field, corrected value) for a clerical error in `p`'s name, if the tables know one."""
    if p.family_name in NAME_VARIANTS:
        return "family_name", NAME_VARIANTS[p.family_name][0]
    same = _HOMOPHONES.get((p.sex, p.given_name_kana), [])
    others = [n for n in same if n != p.given_name]
    return ("given_name", others[0]) if others else None


def goki_shusei(book: Book, roll: Roll) -> bool:
    """誤記修正: a character of the name was entered wrongly (異体字, or a homophone 名)."""
    p = _find(book, roll, lambda q: _variant(q) is not None)
    if p is None:
        return False
    fix = _variant(p)
    assert fix is not None
    undo = _save(p, (fix[0],))
    setattr(p, fix[0], fix[1])
    book.record(p, "GOKI_SHUSEI", book.dates([p], "ex_officio"), undo=undo)
    return True


def kojin_bango_henko(book: Book, roll: Roll) -> bool:
    """個人番号変更: a new 個人番号 (e.g. after a leak), valid check digit."""
    p = pick_resident(book, roll)
    if p is None:
        return False
    p.personal_number = book.factory.personal_number()
    book.record(p, "KOJIN_BANGO_HENKO", book.dates([p], "notified"))
    return True


def juminhyo_code_henko(book: Book, roll: Roll) -> bool:
    """住民票コード変更: a new 住民票コード at the resident's request."""
    p = pick_resident(book, roll)
    if p is None:
        return False
    p.resident_code = book.factory.resident_code()
    book.record(p, "JUMINHYO_CODE_HENKO", book.dates([p], "notified"))
    return True


def setai_bunri(book: Book, roll: Roll) -> bool:
    """世帯分離: a grown-up member (with their spouse and children) forms a household at the same address.

    Typically elderly parents, or an adult child's family; never the householder's spouse.
    """
    def fits(q: Person) -> bool:
        head = _house(q).head
        grown_up = age_on(q.birth_date, book.today) >= 18
        return grown_up and q is not head and (head is None or q is not head.spouse)

    p = _find(book, roll, fits)
    if p is None:
        return False
    house = _house(p)
    group = [p]
    if p.spouse is not None and p.spouse in house.members and p.spouse is not house.head:
        group.append(p.spouse)
    group += [m for m in house.members if p in m.parents and m is not house.head and m not in group]
    new = Household(book.factory.serial(roll.code, "household"), roll.code, house.address, head=p,
                    members=group, welfare=house.welfare, origin=house)
    for m in group:
        house.members.remove(m)
        m.household = new
    roll.add_household(new)
    roll.splits.append(new)
    new.relink()
    when = book.dates(group, "notified")
    for m in group:
        book.record(m, "SETAI_BUNRI", when)
    return True


def _split_pair(book: Book, roll: Roll) -> tuple[Household, Household] | None:
    """A household made by 世帯分離 and the one it left, both still at the same address."""
    while roll.splits:
        i = book.rng.randrange(len(roll.splits))
        split = roll.splits[i]
        origin = split.origin
        if (roll.has_household(split) and origin is not None and roll.has_household(origin)
                and origin.address == split.address):
            return split, origin
        roll.splits[i] = roll.splits[-1]
        roll.splits.pop()
    return None


def setai_gappei(book: Book, roll: Roll) -> bool:
    """世帯合併: a household made by 世帯分離 joins the household it left again."""
    pair = _split_pair(book, roll)
    if pair is None:
        return False
    split, origin = pair
    movers = list(split.members)
    roll.drop_household(split)
    for m in movers:
        m.household = origin
        origin.members.append(m)
    origin.relink()
    when = book.dates(movers, "notified")
    for m in movers:
        book.record(m, "SETAI_GAPPEI", when)
    return True


def setai_henko(book: Book, roll: Roll) -> bool:
    """世帯変更: one member moves between two households at the same address."""
    for _ in range(10):
        pair = _split_pair(book, roll)
        if pair is None:
            return False
        a, b = pair if book.rng.random() < 0.5 else pair[::-1]
        movable = [m for m in a.members if m is not a.head] or [m for m in b.members if m is not b.head]
        if movable:
            break
    else:
        return False
    mover = movable[book.rng.randrange(len(movable))]
    source = _house(mover)
    target = b if source is a else a
    source.members.remove(mover)
    target.members.append(mover)
    mover.household = target
    target.relink()
    book.record(mover, "SETAI_HENKO", book.dates([mover], "notified"))
    return True


def setainushi_henko(book: Book, roll: Roll) -> bool:
    """世帯主変更: the spouse or a grown-up child takes over; every member's 続柄 is redone."""
    p = _find(book, roll, lambda q: q is not _house(q).head and age_on(q.birth_date, book.today) >= 20)
    if p is None:
        return False
    house = _house(p)
    book.change_head(house, p, book.dates(house.members, "notified"))
    return True


def kyuuji(book: Book, roll: Roll) -> bool:
    """旧氏: a married resident has their former 氏 recorded (or, rarely, removed)."""
    p = _find(book, roll, lambda q: q.birth_family is not None or q.former_family_name is not None)
    if p is None:
        return False
    undo = _save(p, ("former_family_name", "former_family_name_kana"))
    if p.former_family_name is None and p.birth_family is not None:
        p.former_family_name, p.former_family_name_kana = p.birth_family
    elif book.rng.random() < 0.3:
        p.former_family_name = p.former_family_name_kana = None
    else:
        return False
    book.record(p, "KYUUJI", book.dates([p], "notified"), undo=undo)
    return True


def tsusho(book: Book, roll: Roll) -> bool:
    """通称: a foreign resident has an alias recorded (or removed)."""
    p = _find(book, roll, lambda q: q.nationality is not None, tries=80)
    if p is None:
        return False
    undo = _save(p, ("alias_name", "alias_name_kana"))
    if p.alias_name is None:
        p.alias_name, p.alias_name_kana = book.factory.alias(p.sex, p.birth_date)
    elif book.rng.random() < 0.3:
        p.alias_name = p.alias_name_kana = None
    else:
        return False
    book.record(p, "TSUSHO", book.dates([p], "notified"), undo=undo)
    return True


def torikeshi(book: Book, roll: Roll) -> bool:
    """異動の取消し: the last change of a person is cancelled and their earlier state restored."""
    rng = book.rng
    while roll.undoable:
        i = rng.randrange(len(roll.undoable))
        p = roll.undoable[i]
        roll.undoable[i] = roll.undoable[-1]
        roll.undoable.pop()
        undo = p.undo
        if undo is None or undo["_at"] != p.history_number:
            continue
        if undo.get("_restore"):
            house = _house(p)
            if not roll.has_household(house):
                continue
            p.status = "RESIDENT"
            house.members.append(p)
            roll.add_person(p)
            house.relink()
        for name, value in undo.items():
            if not name.startswith("_"):
                setattr(p, name, value)
        book.record(p, "TORIKESHI", book.dates([p], "ex_officio"), cancelled=p.history_number)
        return True
    return False


CORRECTION: dict[str, Callable[[Book, Roll], bool]] = {
    "TENKYO": tenkyo,
    "SHIMEI_HENKO": shimei_henko,
    "KEIBI_SHUSEI": keibi_shusei,
    "SHOKKEN_SHUSEI": shokken_shusei,
    "GOKI_SHUSEI": goki_shusei,
    "KOJIN_BANGO_HENKO": kojin_bango_henko,
    "JUMINHYO_CODE_HENKO": juminhyo_code_henko,
    "SETAI_BUNRI": setai_bunri,
    "SETAI_GAPPEI": setai_gappei,
    "SETAI_HENKO": setai_henko,
    "SETAINUSHI_HENKO": setainushi_henko,
    "KYUUJI": kyuuji,
    "TSUSHO": tsusho,
    "TORIKESHI": torikeshi,
}
