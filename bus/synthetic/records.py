"""A person's state → a jumin.idou record (dict), with the insurance flags that fit the ages.

Flags are derived on the 異動日 (effective date) from the person and their household:

- 国民健康保険 (kokuho): under 75, not on public assistance, and not covered by an
  employer's insurance (their own, or as the dependant of a working householder/spouse);
  an employee retires from employer insurance at 65 here. 国保世帯: any member is kokuho.
- 介護保険 (kaigo): 65 and over (第1号), or 40-64 with medical insurance (第2号: not on
  public assistance).
- 後期高齢者医療 (koki): 75 and over.
- 国民年金 (nenkin_category): employees 18-69 DAI2GO; else 20-59: DAI3GO when the spouse is
  an employee under 65, otherwise DAI1GO; everyone else NONE.
- 児童手当 (jido_teate): the household has a 児童 (児童手当法 第3条: to the first 31 March after
  reaching 18). 生活保護 (welfare): household flag (a v1 item; not a 住民票 item).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from bus.routing.context import age_at_fiscal_year_start
from bus.synthetic.model import Address, Household, Person, age_on

__all__ = ["insurance", "to_record"]

def _employee(p: Person, on: date) -> bool:
    return p.employee and age_on(p.birth_date, on) < 65


def insurance(p: Person, house: Household, on: date) -> dict[str, Any]:
    """The InsuranceStatus record of `p` on `on`."""
    welfare = house.welfare
    members = house.members if p in house.members else [*house.members, p]
    head = house.head
    spouse = head.spouse if head is not None and head.spouse in members else None
    earner = (head is not None and _employee(head, on)) or (spouse is not None and _employee(spouse, on))
    any_kokuho = False
    has_child = False
    own: bool = False
    for m in members:
        age = age_on(m.birth_date, on)
        if age_at_fiscal_year_start(m.birth_date, on) < 18:
            has_child = True
        # insured by an employer: their own job, or as the dependant of a working head/spouse
        covered = (m.employee and age < 65) or (earner and (m is head or m is spouse or age < 25))
        kokuho = not welfare and age < 75 and not covered
        any_kokuho = any_kokuho or kokuho
        if m is p:
            own = kokuho
    age = age_on(p.birth_date, on)
    if p.employee and 18 <= age < 70:
        category = "DAI2GO"
    elif 20 <= age < 60:
        sp = p.spouse
        dependant = sp is not None and sp in members and _employee(sp, on) and not p.employee
        category = "DAI3GO" if dependant else "DAI1GO"
    else:
        category = "NONE"
    return {
        "kokuho": own,
        "kokuho_household": any_kokuho,
        "kaigo": age >= 65 or (age >= 40 and not welfare),
        "koki": age >= 75,
        "nenkin_category": category,
        "jido_teate": has_child,
        "welfare": welfare,
    }


def _addr(a: Address | None) -> dict[str, Any] | None:
    return None if a is None else a.as_dict()


def to_record(p: Person, flags_on: date | None = None) -> dict[str, Any]:
    """The jumin.idou record of `p`'s last change (fields in docs/architecture.md order).

    Insurance flags are those on the 異動日, or on `flags_on` when given (an extract
    made today shows today's status).
    """
    change = p.last_change
    house = p.household
    assert change is not None and house is not None, "a person is recorded only after a change"
    reason, effective, notified, processed, cancelled = change
    previous, moved_to, country = p.last_extra
    return {
        "municipality_code": p.municipality,
        "address_number": p.address_number,
        "history_number": p.history_number,
        "resident_code": p.resident_code,
        "personal_number": p.personal_number,
        "integrated_address_number": p.integrated_address_number,
        "household_number": house.number,
        "change": {
            "reason": reason,
            "effective_date": effective,
            "notified_date": notified,
            "processed_date": processed,
            "cancelled_history_number": cancelled,
        },
        "resident_type": "JAPANESE" if p.nationality is None else "FOREIGN",
        "resident_status": p.status,
        "name": {
            "family_name": p.family_name,
            "given_name": p.given_name,
            "family_name_kana": p.family_name_kana,
            "given_name_kana": p.given_name_kana,
            "former_family_name": p.former_family_name,
            "former_family_name_kana": p.former_family_name_kana,
            "alias_name": p.alias_name,
            "alias_name_kana": p.alias_name_kana,
        },
        "birth_date": p.birth_date,
        "sex": p.sex,
        "relationship": p.relationship,
        "nationality": p.nationality,
        "address": house.address.as_dict(),
        "previous_address": _addr(previous),
        "moved_out_to": _addr(moved_to),
        "moved_out_country": country,
        "insurance": insurance(p, house, flags_on or effective),
    }
