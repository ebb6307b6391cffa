"""Synthetic jumin.idou v2 records: the v1 registry's records as a 標準準拠 registry writes them.

    for record in Registry(seed=1).events(100):
        v2 = to_v2(record)

On top of bus.catalog.upgrade (which maps codes and leaves the v2-only items unset), each
person gets, deterministically from their 宛名番号:

- foreign residents: the 第30条の45 items (区分, 在留資格, 在留期間 and its 満了日, 在留カード or
  特別永住者証明書 number, 外国人住民となった年月日); an alphabet name (氏名（アルファベット）) for
  those whose name is written in the alphabet, with no kanji name; no 振り仮名 for a third of
  them (the transition, and foreign residents who have none);
- 振り仮名確認: confirmed for most Japanese residents, unconfirmed or absent for the rest;
- 不詳日: about 1 in 40 persons born before 1950 have a 生年月日 the registry records as
  "昭和N年頃" (with the internal date beside it); about 1 in 3 deaths have a 不詳 異動日;
- 支援措置: about 1 in 150 persons;
- 続柄: the standard's words; a grandparent of the householder (v1 SOFU/SOBO, which the
  standard does not implement) is 父の父 / 父の母 (the factory gives them the householder's
  family name); 国民年金 第2号 never appears (upgrade makes it NONE);
- 世帯主の氏名 for the householder themself.

`Householders` adds what one record cannot know: the 世帯主's 団体内統合宛名番号 on the changes
of the other members (`householder_integrated_address_number`, which addresses the
マイナポータル notices a parent acts on), from a registry extract and the changes seen since.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from bus.catalog.upgrade import upgrade_jumin_idou

__all__ = ["Householders", "to_v2"]

_STATUS = ("技術・人文知識・国際業務", "技能実習", "特定技能", "留学", "家族滞在", "永住者", "定住者",
           "日本人の配偶者等")
_PERIOD = {"技術・人文知識・国際業務": "3年", "技能実習": "1年", "特定技能": "1年", "留学": "2年", "家族滞在": "3年",
           "定住者": "5年", "日本人の配偶者等": "3年"}
_SPECIAL = frozenset({"KR", "CN", "TW"})  # 特別永住者 are mostly of these
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def _showa(day: date) -> str:
    return f"昭和{day.year - 1925}年頃" if 1926 <= day.year <= 1988 else f"{day.year}年頃"


def _card(rng: random.Random) -> str:
    letters = "".join(rng.choice(_LETTERS) for _ in range(4))
    return f"{letters[:2]}{rng.randrange(10**8):08d}{letters[2:]}"


def _foreign(record: dict[str, Any], rng: random.Random, on: date) -> None:
    name = record["name"]
    family = name.get("family_name") or ""
    if family.isascii():
        name["name_alphabet"] = f"{family} {name.get('given_name') or ''}".strip()
        name["family_name"] = name["given_name"] = None
    if rng.random() < 1 / 3:
        name["family_name_kana"] = name["given_name_kana"] = None
    special = record.get("nationality") in _SPECIAL and rng.random() < 0.3
    status = None if special else rng.choice(_STATUS)
    permanent = status == "永住者"
    record["foreign_resident"] = {
        "category": "TOKUBETSU_EIJUSHA" if special else "CHUCHOKI",
        "status_of_residence": status,
        "period_of_stay": None if special or permanent else _PERIOD.get(status or ""),
        "period_expiry": None if special or permanent else on + timedelta(days=rng.randrange(60, 1800)),
        "card_number": _card(rng),
        "became_resident_date": None,
    }


def to_v2(v1: Mapping[str, Any]) -> dict[str, Any]:
    """The v2 record of a synthetic v1 record (valid jumin.idou v2; see the module doc)."""
    record = upgrade_jumin_idou(v1)
    rng = random.Random(f"v2|{v1['municipality_code']}|{v1['address_number']}")
    change = record["change"]
    on = change["effective_date"]["reference_date"]
    name = record["name"]
    if v1.get("relationship") in ("SOFU", "SOBO"):
        record["relationship"] = "父の父" if v1["relationship"] == "SOFU" else "父の母"
    if record["resident_type"] == "FOREIGN":
        _foreign(record, rng, on)
    else:
        draw = rng.random()
        name["kana_status"] = "CONFIRMED" if draw < 0.7 else "UNCONFIRMED" if draw < 0.85 else None
    if record["relationship"] == "世帯主":
        record["householder_name"] = "　".join(
            n for n in (name.get("family_name"), name.get("given_name")) if n) or name.get("name_alphabet")
    birth = record["birth_date"]["reference_date"]
    if birth.year < 1950 and rng.random() < 1 / 40:
        record["birth_date"] = {"text": _showa(birth), "reference_date": birth}
    death_draw = random.Random(f"{record['history_number']}|{v1['address_number']}").random()
    if change["reason"] == "SHIBOU" and death_draw < 1 / 3:
        part = "上旬" if on.day <= 10 else "中旬" if on.day <= 20 else "下旬"
        change["effective_date"] = {"text": f"令和{on.year - 2018}年{on.month}月{part}", "reference_date": on}
    record["support_measure"] = rng.random() < 1 / 150
    return record


class Householders:
    """The 団体内統合宛名番号 of each household's 世帯主, by (団体, 世帯番号), kept up to date
    from v1 records (an extract, then each change as it is sent)."""

    def __init__(self, extract: Iterable[Mapping[str, Any]] = ()) -> None:
        self._numbers: dict[tuple[str, str], str] = {}
        for record in extract:
            self.see(record)

    def see(self, v1: Mapping[str, Any]) -> None:
        number = v1.get("integrated_address_number")
        if v1.get("relationship") == "SETAINUSHI" and v1.get("resident_status") == "RESIDENT" and number:
            self._numbers[(str(v1["municipality_code"]), str(v1["household_number"]))] = str(number)

    def fill(self, v2: dict[str, Any]) -> dict[str, Any]:
        """`v2` (changed in place) with its 世帯主's number when known and not the person's own."""
        number = self._numbers.get((str(v2["municipality_code"]), str(v2["household_number"])))
        if v2.get("relationship") != "世帯主" and number and number != v2.get("integrated_address_number"):
            v2["householder_integrated_address_number"] = number
        return v2
