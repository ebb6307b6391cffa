"""The activation a route condition sees: a few facts derived from one resident change.

A condition never sees the record itself. `build_context` turns a `jumin.idou` record into
a flat mapping of small values (symbols, booleans, ages, dates as ISO text) and nothing
else: no name, no 宛名番号 / 個人番号 / 住民票コード / 世帯番号, no address. A condition
cannot leak or depend on personal data it does not need, and a route file can be read by
anyone who may read the configuration.

Ages are counted as Japanese law counts them (年齢計算ニ関スル法律 and 民法第143条): a
person reaches the next age at the end of the day before the birthday, so on that day the
age is already reached (介護保険 第1号被保険者 qualify "on the day they reach 65", which is
the day before the 65th birthday). A person born on 29 February reaches the next age on
28 February in a common year. `age_on` implements this.

Two other counts the laws use:
- `age_at_fiscal_year_start`: the age reached by the start of the fiscal year (年度, 1 April)
  of 異動日. 児童手当法 第3条第1項 counts a 児童 "until the first 31 March after the day
  they reach 18" (18歳に達する日以後の最初の3月31日まで): that is exactly
  ``age_at_fiscal_year_start < 18``. The same with 22 is the count of children of the
  2024 reform (第3子 counting up to the first 31 March after the 22nd).
- `age_by_birthday`: the age from the birthday itself. 後期高齢者医療 資格 begins on the 75th
  birthday (高齢者の医療の確保に関する法律 第52条 as applied: 75歳の誕生日当日), one day later
  than the legal count, so its route uses this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from bus.catalog.upgrade import RELATIONSHIPS_V2_TO_V1, is_v2, reference_date

__all__ = [
    "CHANGED_BY_REASON",
    "CONTEXT_VARIABLES",
    "FUKUHON_ITEMS",
    "GROUPS",
    "Variable",
    "age_at_fiscal_year_start",
    "age_by_birthday",
    "age_on",
    "application_context",
    "build_context",
    "changed_items",
    "months_later",
    "registered_since",
    "support_measure_context",
]

#: The 副本 items the intermediate server keeps and a change can alter. The registry's 副本 is
#: 住民票関係情報, so the household (世帯番号, 世帯主, 続柄) is one of them.
FUKUHON_ITEMS: tuple[str, ...] = ("address", "name", "birth_date", "sex", "death", "moved_out", "household")
_NEW_PERSON = ("address", "name", "birth_date", "sex")  # a person newly on this registry

#: Which 副本 items a change alters, by 異動事由. A snapshot carries no "before", so this is
#: derived from the reason; corrections that may touch anything count as touching everything.
CHANGED_BY_REASON: Mapping[str, tuple[str, ...]] = {
    "TENNYU": _NEW_PERSON,
    "KOKUGAI_TENNYU": _NEW_PERSON,
    "SHUSSEI": _NEW_PERSON,
    "SHOKKEN_KISAI": _NEW_PERSON,
    "TENSHUTSU": ("moved_out",),
    "KOKUGAI_TENSHUTSU": ("moved_out",),
    "SHIBOU": ("death",),
    "SHOKKEN_SHOJO": ("moved_out",),
    "TENKYO": ("address",),
    "SHIMEI_HENKO": ("name",),
    "KYUUJI": ("name",),
    "TSUSHO": ("name",),
    "KEIBI_SHUSEI": FUKUHON_ITEMS,
    "SHOKKEN_SHUSEI": FUKUHON_ITEMS,
    "GOKI_SHUSEI": FUKUHON_ITEMS,
    "TORIKESHI": FUKUHON_ITEMS,
    "KOJIN_BANGO_HENKO": (),
    "JUMINHYO_CODE_HENKO": (),
    "SETAI_BUNRI": ("household",),
    "SETAI_GAPPEI": ("household",),
    "SETAI_HENKO": ("household",),
    "SETAINUSHI_HENKO": ("household",),
    # jumin.idou v2 (the standard's 1.2.2): the same rule, reason by reason
    **dict.fromkeys(("SHOKKEN_KISAI_KIKA", "SHOKKEN_KISAI_KOKUSEKI_SOSHITSU", "KAISEI_KISAI", "SAISEI_KISAI",
                     "TORIKESHI_ZO"), _NEW_PERSON),
    **dict.fromkeys(("SHOKKEN_SHOJO_KIKA", "SHOKKEN_SHOJO_KOKUSEKI_SOSHITSU", "KAISEI_SHOJO", "SAISEI_SHOJO"),
                    ("moved_out",)),
    **dict.fromkeys(("KYUUJI_KISAI", "KYUUJI_HENKO", "KYUUJI_SAKUJO", "TSUSHO_KISAI", "TSUSHO_SAKUJO"), ("name",)),
    **dict.fromkeys(("KOJIN_BANGO_HENKO_SEIKYU", "KOJIN_BANGO_SHOKKEN_SHUSEI", "KOJIN_BANGO_SHOKKEN_KISAI",
                     "JUMINHYO_CODE_HENKO_SEIKYU", "JUMINHYO_CODE_SHOKKEN_KISAI"), ()),
    "KUKAN_IDOU": ("address", "household"),  # a new 世帯番号 (1.1.13)
    "TORIKESHI_GEN": FUKUHON_ITEMS,
    "TORIKESHI_SHUSEI": FUKUHON_ITEMS,
}

GROUPS: tuple[str, ...] = ("increase", "decrease", "correction")


@dataclass(frozen=True, slots=True)
class Variable:
    """One context variable: its CEL type, meaning, and the code list its values come from."""

    name: str
    type: str  # CEL type: int, string, bool, list(string)
    description: str
    codelist: str | None = None  # a schemas/codelists.yaml list, "Group" or "FukuhonItem"


def _v(name: str, type_: str, description: str, codelist: str | None = None) -> Variable:
    return Variable(name, type_, description, codelist)


#: Every variable a condition may use; the loader rejects any other name.
CONTEXT_VARIABLES: Mapping[str, Variable] = {
    v.name: v
    for v in (
        _v("reason", "string", "異動事由 symbol, e.g. 'TENNYU'", "ChangeReason"),
        _v("group", "string", "group of the reason: 'increase', 'decrease' or 'correction'", "Group"),
        _v("age", "int", "age in full years on 異動日 (change.effective_date), Japanese counting"),
        _v("age_on_processed", "int", "age in full years on 処理日 (change.processed_date)"),
        _v("age_at_fiscal_year_start", "int",
           "age reached by 1 April of the fiscal year (年度) of 異動日: 児童手当's 児童 is < 18"),
        _v("age_by_birthday", "int", "age in full years counting from the birthday itself (後期高齢者医療: 75)"),
        _v("effective_date", "string", "異動日 as ISO text 'YYYY-MM-DD' (compare as text)"),
        _v("processed_date", "string", "処理日 as ISO text 'YYYY-MM-DD'"),
        _v("resident_type", "string", "住民種別: 'JAPANESE' or 'FOREIGN'", "ResidentType"),
        _v("resident_status", "string", "住民状態: 'RESIDENT' or 'REMOVED'", "ResidentStatus"),
        _v("relationship", "string", "続柄 symbol, e.g. 'SETAINUSHI', 'KO'", "Relationship"),
        _v("sex", "string", "性別: 'MALE' or 'FEMALE'", "Sex"),
        _v("kokuho", "bool", "国民健康保険 被保険者 (insurance.kokuho)"),
        _v("kokuho_household", "bool", "member of a 国保世帯 (insurance.kokuho_household)"),
        _v("kaigo", "bool", "介護保険 被保険者 (insurance.kaigo)"),
        _v("koki", "bool", "後期高齢者医療 被保険者 (insurance.koki)"),
        _v("koki_disability_certified", "bool",
           "65–74 with a 障害認定 of the 後期高齢者医療広域連合 (insurance.koki_disability_certified, v2)"),
        _v("kaigo_household", "bool",
           "the household has a 介護保険 第1号被保険者, whose 保険料段階 its members' tax status sets "
           "(insurance.kaigo_household, v2)"),
        _v("nenkin_category", "string", "国民年金 種別: 'NONE', 'DAI1GO', 'DAI2GO', 'DAI3GO'",
           "PensionCategory"),
        _v("jido_teate", "bool", "household receives 児童手当 (insurance.jido_teate)"),
        _v("welfare", "bool", "household receives 生活保護 etc. (insurance.welfare)"),
        _v("elector_registered", "bool", "登録 in this municipality's 選挙人名簿 (elector_registered, v2)"),
        _v("registered_three_months", "bool",
           "on 異動日, recorded on this registry for 3 months or more since the 住民票 was made (公職選挙法 "
           "第21条第1項: from the 転入届出日 for a 転入); v1 and a v2 record without the date: true "
           "unless the change is itself an increase"),
        _v("has_personal_number", "bool", "the record carries a 個人番号 (never the number itself)"),
        _v("has_integrated_address_number", "bool",
           "the record carries the person's 団体内統合宛名番号 (always in v1; v2: when the registry has it)"),
        _v("has_householder_integrated_address_number", "bool",
           "the record carries the 世帯主's 団体内統合宛名番号 (a v2 item), or the person is the 世帯主 and "
           "carries their own: a notice can be addressed to the householder"),
        _v("municipality", "string", "地方公共団体コード of the message (6 digits)"),
        _v("procedure_code", "string",
           "手続コード of a ぴったりサービス application (pittari.shinsei); '' for a resident change. An "
           "application's context has only this and `municipality`: every other variable is its zero"),
        _v("changed", "list(string)", "副本 items this change alters: " + ", ".join(FUKUHON_ITEMS),
           "FukuhonItem"),
    )
}


def age_on(birth: date, on: date) -> int:
    """Age in full years on `on`, as Japanese law counts it.

    The age is reached at the end of the day before the birthday, i.e. `on` counts as the
    day after: born 1985-06-15 → 39 on 2025-06-13, 40 on 2025-06-14 (and 2025-06-15).
    Born 2000-02-29 → 0 on 2001-02-27, 1 on 2001-02-28.
    """
    reference = on + timedelta(days=1)
    years = reference.year - birth.year
    if (reference.month, reference.day) < (birth.month, birth.day):
        years -= 1
    return years


def age_by_birthday(birth: date, on: date) -> int:
    """Age in full years on `on`, counted from the birthday itself (one day after `age_on`):
    born 1950-06-15 → 74 on 2025-06-14, 75 on 2025-06-15."""
    years = on.year - birth.year
    if (on.month, on.day) < (birth.month, birth.day):
        years -= 1
    return years


def age_at_fiscal_year_start(birth: date, on: date) -> int:
    """The age reached by the start of the fiscal year (年度: 1 April – 31 March) of `on`.

    Reached by 1 April means reached by the end of 31 March (`age_on` on 31 March). Born
    2007-04-02 (18 reached on 2025-04-01): 17 for 年度 2025, so a 児童 until 2026-03-31.
    Born 2007-04-01 (18 reached on 2025-03-31): 18 for 年度 2025, a 児童 until 2025-03-31.
    """
    year = on.year if (on.month, on.day) >= (4, 1) else on.year - 1
    return age_on(birth, date(year, 3, 31))


def months_later(day: date, months: int) -> date:
    """The day `months` months after `day`, the same day number (the month's last day when that
    month is shorter): 2025-06-01 → 2025-09-01; 2025-11-30 + 3 → 2026-02-28."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    following = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
    return date(year, month + 1, min(day.day, (following - timedelta(days=1)).day))


_MOVE_IN = ("TENNYU", "KOKUGAI_TENNYU")


def registered_since(record: Mapping[str, Any]) -> date | None:
    """The day this registry's 住民票 of the person counts from for 公職選挙法 第21条第1項: the
    届出日 of a 転入 (the change itself), else v2's 住民となった年月日 (its reference date);
    None when the record does not say (v1 outside a 転入)."""
    change = record.get("change") or {}
    if change.get("reason") in _MOVE_IN:
        return _as_date(change.get("notified_date") or change.get("effective_date"), "change/notified_date")
    since = record.get("became_resident_date")
    return reference_date(since) if since is not None else None


def _registered_three_months(record: Mapping[str, Any], effective: date, group: str) -> bool:
    """3 months or more on this registry on 異動日: 届出 2025-06-01 → from 2025-09-01 (the day
    with the same number three months later, as the 選挙管理委員会 count for 定時登録: 基準日
    9月1日 takes those who moved in by 6月1日). Unknown: true unless the change is an increase."""
    since = registered_since(record)
    if since is None:
        return group != "increase"
    return effective >= months_later(since, 3)


def changed_items(reason: str) -> list[str]:
    """The 副本 items a change with this reason alters (all of them for an unknown reason)."""
    return list(CHANGED_BY_REASON.get(reason, FUKUHON_ITEMS))


def _as_date(value: Any, field: str) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value)
    day = reference_date(value)  # a date, or a v2 RegistryDate (不詳日: its reference date)
    if day is None:
        raise ValueError(f"{field}: expected a date, got {type(value).__name__}")
    return day


def build_context(
    record: Mapping[str, Any],
    municipality: str,
    group_of: Callable[[str], str],
) -> dict[str, Any]:
    """The CEL activation of a `jumin.idou` record (see CONTEXT_VARIABLES), or of an application
    (a record with a `procedure_code`, no `change`: `application_context`).

    `group_of` maps a ChangeReason symbol to its group (bus.catalog.codelists.CodeLists.group).
    Missing flags read as false and a missing 国民年金種別 as 'NONE', so every variable is
    always present with its declared type.
    """
    if "change" not in record and "procedure_code" in record:
        return application_context(record, municipality)
    if "change" not in record and "measure" in record:
        return support_measure_context(record, municipality)
    change = record.get("change") or {}
    reason = str(change.get("reason", ""))
    v2 = is_v2(record)
    birth = _as_date(record.get("birth_date"), "birth_date")
    effective = _as_date(change.get("effective_date"), "change/effective_date")
    processed = _as_date(change.get("processed_date") or effective, "change/processed_date")
    insurance = record.get("insurance") or {}
    try:
        group = group_of(reason)
    except KeyError:
        group = ""
    return {
        "reason": reason,
        "group": group,
        "age": age_on(birth, effective),
        "age_on_processed": age_on(birth, processed),
        "age_at_fiscal_year_start": age_at_fiscal_year_start(birth, effective),
        "age_by_birthday": age_by_birthday(birth, effective),
        "effective_date": effective.isoformat(),
        "processed_date": processed.isoformat(),
        "resident_type": str(record.get("resident_type") or ""),
        "resident_status": _status(record) if v2 else str(record.get("resident_status") or ""),
        "relationship": _relationship(record) if v2 else str(record.get("relationship") or ""),
        "sex": str(record.get("sex") or ""),
        "kokuho": bool(insurance.get("kokuho")),
        "kokuho_household": bool(insurance.get("kokuho_household")),
        "kaigo": bool(insurance.get("kaigo")),
        "koki": bool(insurance.get("koki")),
        "koki_disability_certified": bool(insurance.get("koki_disability_certified")),
        "kaigo_household": bool(insurance.get("kaigo_household")),
        "nenkin_category": str(insurance.get("nenkin_category") or "NONE"),  # v2 adds NINI_KANYU
        "jido_teate": bool(insurance.get("jido_teate")),
        "welfare": bool(insurance.get("welfare")),
        "elector_registered": bool(record.get("elector_registered")),
        "registered_three_months": _registered_three_months(record, effective, group),
        "has_personal_number": bool(record.get("personal_number")),
        "has_integrated_address_number": bool(record.get("integrated_address_number")),
        "has_householder_integrated_address_number": _householder_addressable(record, v2),
        "municipality": municipality,
        "procedure_code": "",
        "changed": changed_items(reason),
    }


_ZERO = {"int": 0, "string": "", "bool": False, "list(string)": []}


def application_context(record: Mapping[str, Any], municipality: str) -> dict[str, Any]:
    """The activation of an application (pittari.shinsei): its 手続コード and municipality; every
    resident variable its type's zero (an application is no resident change)."""
    context: dict[str, Any] = {v.name: _ZERO[v.type] for v in CONTEXT_VARIABLES.values()}
    context["nenkin_category"] = "NONE"
    context.update(procedure_code=str(record.get("procedure_code") or ""), municipality=municipality)
    return context


def support_measure_context(record: Mapping[str, Any], municipality: str) -> dict[str, Any]:
    """The activation of a 支援措置 (jumin.shien): its municipality; every resident variable its
    type's zero (it carries no birth date, insurance or 住民種別: who receives it is every system
    that receives the residents' changes, routes/shien.yaml)."""
    context: dict[str, Any] = {v.name: _ZERO[v.type] for v in CONTEXT_VARIABLES.values()}
    context.update(nenkin_category="NONE", municipality=municipality)
    return context


def _householder_addressable(record: Mapping[str, Any], v2: bool) -> bool:
    if record.get("householder_integrated_address_number"):
        return True
    householder = record.get("relationship") == ("世帯主" if v2 else "SETAINUSHI")
    return householder and bool(record.get("integrated_address_number"))


def _status(record: Mapping[str, Any]) -> str:
    """v2's 住民状態 (RESIDENT, TENSHUTSU, SHIBOU, SHOJO) as the context's RESIDENT / REMOVED."""
    return "RESIDENT" if record.get("resident_status") == "RESIDENT" else "REMOVED"


def _relationship(record: Mapping[str, Any]) -> str:
    """v2's 続柄 words as a Relationship symbol: '' for 世帯主未設定, ENKOSHA for a chain v1 lacks."""
    words = record.get("relationship")
    return "" if words is None else RELATIONSHIPS_V2_TO_V1.get(str(words), "ENKOSHA")
