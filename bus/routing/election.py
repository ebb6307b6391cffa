"""選挙時登録: who the 市町村選挙管理委員会 registers on the 選挙人名簿 for one election.

    election = Election(reference_date=date(2026, 6, 25), election_day=date(2026, 7, 12))
    verdict = election_registration(record, election)     # a jumin.idou record, v1 or v2
    verdict.registered, verdict.reasons                   # the reasons in the law's terms

The law (公職選挙法, 昭和25年法律第100号):
- 第21条第1項: 登録 is for a 日本国民 of 年齢満十八年以上 with an address in the municipality,
  recorded on its 住民基本台帳 引き続き三箇月以上 from the day its 住民票 was made (for a 転入:
  from the day of the 届出, 住民基本台帳法 第22条);
- 第22条: the 登録 — 第1項 the 定時登録 (登録月の一日現在), 第2項 the same when the 登録月 falls in
  an election's period, "登録月の一日現在（…選挙人の年齢については、当該選挙の期日現在）",
  and the 選挙時登録 of an election (its 登録基準日, set by the 選挙管理委員会 that manages the
  election; 第22条第3項 in the text as amended — its wording was not reachable here: check it
  on e-Gov) counts the same way: every qualification on the 登録基準日, **the age on the
  選挙の期日**. So a 17-year-old on the 基準日 who reaches 18 by the election day is registered.

Ages are reached on the day before the birthday (年齢計算ニ関スル法律, 民法 第143条): born
2008-07-13 → 18 on 2026-07-12. Three months: 届出 2026-03-25 → recorded 3 months on
2026-06-25 (the same day number three months later, `months_later`).

What the record cannot say is said as such: a v1 record outside a 転入 carries no 住民となった
年月日, so its three months are *assumed* (as the `senkyo` route does); a record of a change after
the 基準日 does not show the state on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from bus.catalog.upgrade import reference_date
from bus.errors import ConfigError
from bus.routing.context import age_on, months_later, registered_since

__all__ = ["Election", "Registration", "election_registration"]


@dataclass(frozen=True, slots=True)
class Election:
    """One election: its 登録基準日 and its 選挙の期日 (the 選挙管理委員会 sets both)."""

    reference_date: date  # 登録基準日
    election_day: date  # 選挙の期日

    def __post_init__(self) -> None:
        if self.reference_date > self.election_day:
            raise ConfigError(f"the 登録基準日 {self.reference_date} is after the 選挙の期日 {self.election_day}")


@dataclass(frozen=True, slots=True)
class Registration:
    registered: bool
    reasons: tuple[str, ...]  # each qualification, met or not, in the law's terms (the age, no date of the person)


def _day(value: Any) -> date | None:
    if isinstance(value, str):
        return date.fromisoformat(value)
    return reference_date(value)


def election_registration(record: Mapping[str, Any], election: Election) -> Registration:
    """Whether the person of `record` is registered at the 選挙時登録 of `election`, and why."""
    reasons: list[str] = []
    ok = True

    def check(met: bool, yes: str, no: str) -> None:
        nonlocal ok
        ok = ok and met
        reasons.append(yes if met else no)

    base, day = election.reference_date, election.election_day
    change = record.get("change") or {}
    effective = _day(change.get("effective_date"))
    check(effective is None or effective <= base, "the record shows the state on the 登録基準日",
          f"the record is of a change after the 登録基準日 {base}: it does not show the state on it")
    check(record.get("resident_type") == "JAPANESE", "日本国民 (第21条第1項)",
          "not a 日本国民: no 選挙権 (第9条第1項, 第21条第1項)")
    check(record.get("resident_status") == "RESIDENT", f"住所を有する on {base} (a resident)",
          f"not a resident on {base} (転出, 死亡 or 消除): no address here (第21条第1項)")
    birth = _day(record.get("birth_date"))
    if birth is None:
        check(False, "", "no 生年月日: the age cannot be counted")
    else:
        age = age_on(birth, day)
        check(age >= 18, f"年齢満十八年以上 on the 選挙の期日 {day} (age {age}; 第22条: the age on the 期日)",
              f"not 18 on the 選挙の期日 {day} (age {age}; reached on the day before the birthday)")
    since = registered_since(record)
    if since is None:
        reasons.append("recorded 3 months assumed: the record does not say since when (v1 outside a 転入)")
    else:
        from_day = months_later(since, 3)
        check(base >= from_day, "recorded 引き続き三箇月以上 on the 登録基準日 (第21条第1項)",
              f"not recorded 引き続き三箇月以上 on the 登録基準日 {base} (第21条第1項; for a 転入 from the 届出)")
    return Registration(ok, tuple(reasons))
