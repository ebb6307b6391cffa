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
- 世帯主の氏名 for the householder themself;
- 住民となった年月日 and 住所を定めた年月日 (the change's own day for a 転入, 出生 or 転居, else
  the birth day of one in three persons — born here — or a day between birth and 2024);
  外国人住民となった年月日 the same day; 戸籍の表示 (本籍 in the person's prefecture and city,
  筆頭者 the person) for Japanese residents; the 11-digit 住所コード of 1.3.3 (j250): the
  地方公共団体コード's 5 digits, then 大字 and 小字 (3 digits each: the standard leaves them to
  the 住所辞書; here a number derived from the 町字);
- 選挙人名簿登録: Japanese residents of 18 or over recorded here three months or more
  (公職選挙法 第21条 as the `senkyo` route reads it; a 転入 is not yet registered);
- 国民年金 任意加入 for about 1 in 8 of those aged 60 to 64; a 障害認定 of the 広域連合 (and so
  後期 insured) for about 1 in 20 of those aged 65 to 74 (高確法 第50条第2号);
- stepchildren: about 1 in 12 of the householder's children are 妻の子 (the spouse's child);

`Householders` adds what one record cannot know: the 世帯主's 団体内統合宛名番号 on the changes
of the other members (`householder_integrated_address_number`, which addresses the
マイナポータル notices a parent acts on), and `kaigo_household` for every member of a household
with a 介護保険 第1号被保険者 (65 or over: 介護保険法施行令 第38条 sets their 保険料段階 from the
household's tax status), from a registry extract and the changes seen since.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from bus.catalog.upgrade import upgrade_jumin_idou
from bus.routing.context import age_on, months_later

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
    _registry_items(record, v1, on)
    return record


_ARRIVALS = frozenset({"TENNYU", "KOKUGAI_TENNYU", "SHUSSEI"})


def _registry_items(record: dict[str, Any], v1: Mapping[str, Any], on: date) -> None:
    """The dates, 戸籍の表示, 住所コード, 選挙人名簿登録 and flags of the module doc, from the person alone."""
    rng = random.Random(f"v2 items|{v1['municipality_code']}|{v1['address_number']}")
    birth = record["birth_date"]["reference_date"]
    reason = record["change"]["reason"]
    draw, span = rng.random(), max((min(on, date(2024, 1, 1)) - birth).days, 0)
    since = on if reason in _ARRIVALS else birth if draw < 1 / 3 else birth + timedelta(days=int(draw * span))
    record["became_resident_date"] = {"text": since.isoformat(), "reference_date": since}
    moved = reason in ("TENKYO", "KUKAN_IDOU")
    record["address_since"] = ({"text": on.isoformat(), "reference_date": on} if moved
                               else record["became_resident_date"])
    if record.get("foreign_resident"):
        record["foreign_resident"]["became_resident_date"] = record["became_resident_date"]
    address = record.get("address") or {}
    if address.get("town"):
        town = sum(ord(c) for c in address["town"]) % 999 + 1
        address["address_code"] = f"{str(v1['municipality_code'])[:5]}{town:03d}{rng.randrange(1, 20):03d}"
    japanese = record["resident_type"] == "JAPANESE"
    name = record["name"]
    if japanese and address.get("prefecture") and name.get("family_name"):
        honseki = f"{address['prefecture']}{address.get('city') or ''}{rng.randrange(1, 30)}番地"
        record["domicile"] = {"honseki": honseki,
                              "hittousha": "　".join(n for n in (name["family_name"], name.get("given_name")) if n)}
    age = age_on(birth, on)
    record["elector_registered"] = (japanese and age >= 18 and reason not in _ARRIVALS
                                    and months_later(since, 3) <= on)
    insurance = record["insurance"]
    if 60 <= age < 65 and japanese and rng.random() < 1 / 8:
        insurance["nenkin_category"] = "NINI_KANYU"
    if 65 <= age < 75 and rng.random() < 1 / 20:
        insurance["koki_disability_certified"] = insurance["koki"] = True  # insured by the 広域連合: not 国保
        insurance["kokuho"] = False
    if record.get("relationship") == "子" and rng.random() < 1 / 12:
        record["relationship"] = "妻の子"


class Householders:
    """The 団体内統合宛名番号 of each household's 世帯主, and the households with a 介護保険 第1号
    被保険者, by (団体, 世帯番号), kept up to date from v1 records (an extract, then each change
    as it is sent)."""

    def __init__(self, extract: Iterable[Mapping[str, Any]] = ()) -> None:
        self._numbers: dict[tuple[str, str], str] = {}
        self._first_category: set[tuple[str, str]] = set()  # households with a member of 65 or over
        for record in extract:
            self.see(record)

    def see(self, v1: Mapping[str, Any]) -> None:
        household = (str(v1["municipality_code"]), str(v1["household_number"]))
        number = v1.get("integrated_address_number")
        if v1.get("relationship") == "SETAINUSHI" and v1.get("resident_status") == "RESIDENT" and number:
            self._numbers[household] = str(number)
        on = v1["change"]["effective_date"]
        if v1.get("resident_status") == "RESIDENT" and age_on(v1["birth_date"], on) >= 65:
            self._first_category.add(household)

    def fill(self, v2: dict[str, Any]) -> dict[str, Any]:
        """`v2` (changed in place) with its 世帯主's number when known and not the person's own."""
        household = (str(v2["municipality_code"]), str(v2["household_number"]))
        number = self._numbers.get(household)
        if v2.get("relationship") != "世帯主" and number and number != v2.get("integrated_address_number"):
            v2["householder_integrated_address_number"] = number
        if household in self._first_category and v2["insurance"] is not None:
            v2["insurance"]["kaigo_household"] = True
        return v2
