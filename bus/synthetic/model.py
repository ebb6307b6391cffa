"""The synthetic registry's people and households, and 続柄 (relationship) from kinship.

A `Person` keeps kinship links (spouse, parents, a sibling group, or an explicit `kin`
role) rather than a stored 続柄: `relation(p, head)` derives the relationship to whoever
heads the household, so a 世帯主変更 or 世帯合併 recomputes every member consistently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

__all__ = ["Address", "Household", "Person", "age_on", "relation"]


@dataclass(frozen=True, slots=True)
class Address:
    """住所: the Address record of docs/architecture.md."""

    postal_code: str
    prefecture: str
    city: str
    town: str
    banchi: str
    building: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "postal_code": self.postal_code,
            "prefecture": self.prefecture,
            "city": self.city,
            "town": self.town,
            "banchi": self.banchi,
            "building": self.building,
        }


@dataclass(eq=False, slots=True)
class Person:
    """One person in the registry (identity-hashed: two persons are never equal)."""

    municipality: str
    address_number: str  # 宛名番号
    integrated_address_number: str  # 団体内統合宛名番号
    resident_code: str  # 住民票コード
    personal_number: str  # 個人番号
    family_name: str
    family_name_kana: str
    given_name: str
    given_name_kana: str
    birth_date: date
    sex: str  # MALE | FEMALE
    nationality: str | None = None  # ISO 3166-1 alpha-2; None for Japanese residents
    employee: bool = False  # insured through an employer (被用者保険, 厚生年金)
    former_family_name: str | None = None
    former_family_name_kana: str | None = None
    alias_name: str | None = None
    alias_name_kana: str | None = None
    birth_family: tuple[str, str] | None = None  # 氏 at birth, when marriage changed it
    spouse: Person | None = None
    parents: tuple[Person, ...] = ()
    sibling_group: int | None = None  # siblings whose parents are not in the registry
    kin: tuple[Person, str] | None = None  # "this person is <role> of that person"
    last_child: date = date.min  # birth date of their youngest child (a mother gives birth yearly at most)
    household: Household | None = None
    relationship: str = "SETAINUSHI"
    history_number: int = 0
    status: str = "RESIDENT"
    last_effective: date = date.min
    last_change: tuple[str, date, date | None, date, int | None] | None = None
    last_extra: tuple[Address | None, Address | None, str | None] = (None, None, None)
    undo: dict[str, Any] | None = None  # attributes before the last change, if it can be cancelled
    index: int = -1  # position in the municipality's list of residents

    @property
    def foreign(self) -> bool:
        return self.nationality is not None


@dataclass(eq=False, slots=True)
class Household:
    """世帯: a number, an address, members (householder first is not guaranteed)."""

    number: str  # 世帯番号
    municipality: str
    address: Address
    head: Person | None = None
    members: list[Person] = field(default_factory=list)
    welfare: bool = False  # receives public assistance (生活保護)
    origin: Household | None = None  # the household this one split from (世帯分離)
    index: int = -1  # position in the municipality's list of households

    def relink(self) -> None:
        """Recompute every member's 続柄 against the current head."""
        head = self.head
        if head is None:
            return
        for m in self.members:
            m.relationship = relation(m, head)


def age_on(birth: date, on: date) -> int:
    """Age in whole years on a date."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _child_of(p: Person, head: Person) -> bool:
    return head in p.parents or (head.spouse is not None and head.spouse in p.parents)


def relation(p: Person, head: Person) -> str:
    """続柄 of `p` to the householder `head` (a Relationship symbol)."""
    male = p.sex == "MALE"
    if p is head:
        return "SETAINUSHI"
    if p is head.spouse:
        return "OTTO" if male else "TSUMA"
    if p in head.parents:
        return "CHICHI" if male else "HAHA"
    if _child_of(p, head):
        return "KO"
    if p.spouse is not None and _child_of(p.spouse, head):
        return "KO_NO_OTTO" if male else "KO_NO_TSUMA"
    if any(_child_of(parent, head) for parent in p.parents):
        return "KO_NO_KO"
    spouse = head.spouse
    if spouse is not None and p in spouse.parents:
        if spouse.sex == "MALE":
            return "OTTO_NO_CHICHI" if male else "OTTO_NO_HAHA"
        return "TSUMA_NO_CHICHI" if male else "TSUMA_NO_HAHA"
    if any(p in parent.parents for parent in head.parents):
        return "SOFU" if male else "SOBO"
    if (p.parents and set(p.parents) & set(head.parents)) or (
        p.sibling_group is not None and p.sibling_group == head.sibling_group
    ):
        older = p.birth_date < head.birth_date
        return ("ANI" if older else "OTOUTO") if male else ("ANE" if older else "IMOUTO")
    if p.kin is not None:
        whom, role = p.kin
        return role if whom is head else "ENKOSHA"
    return "DOUKYONIN"
