"""Rules of jumin.idou v2 the schema cannot say (the 住民記録 standard's items; issue 12).

Each rule names the field paths it reads and applies only to a kind that has them all (as in
bus.validation.rules, which collects these). Codes as documented in docs/error-codes.md:
R410 date order, R430 cross-field rule.

- 年月日 (1.1.8): a RegistryDate's text is a calendar date (YYYY-MM-DD), or anything else the
  registry writes (a non-calendar date such as 2023-02-29, a 不詳日 such as 令和5年春); the
  text is carried unchanged, and when it is not a calendar date the registry's internal date
  (reference_date) must come with it. A calendar text and a different reference_date
  contradict each other. The 異動日 may be 不詳 only for 出生 and 死亡 (1.1.8).
- date order on the reference dates: 生年月日 ≤ 異動日; 異動日 ≤ 処理日 except 転出.
- reasons that need items: 転出 needs moved_out; 異動の取消し needs the history number it
  undoes; 通称の記載 needs a 通称; the 帰化 / 国籍喪失 reasons fit only one 住民種別 (1.2.2).
- a name: 氏名 or 氏名（アルファベット）; the 振り仮名確認 state only with a 振り仮名;
  外国人住民の事項 only for foreign residents, 戸籍の表示 only for Japanese ones.
- a 支援措置 (jumin.shien, shien.jumin; standard 1.1.16, 3.1): its 終了年月日 is not before its
  開始年月日, and a release (解除) says the day it ended.

宛名番号 and 世帯番号 are *not* checked for a check digit: 1.1.13 gives new numbers a
modulus-11 check digit (bus.validation.checkdigits.address_number_check_digit) but leaves
numbers already assigned as they are, so a valid registry sends both kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from bus.catalog.upgrade import calendar_date, reference_date

__all__ = ["standard_rules"]

_Finding = tuple[str, str, str, Any, str]
_Findings = Sequence[_Finding]
_Check = Callable[[Mapping[str, Any]], _Findings]
_OK: _Findings = ()
_ADVANCE = frozenset({"TENSHUTSU", "KOKUGAI_TENSHUTSU"})
_UNKNOWN_DAY_ALLOWED = frozenset({"SHUSSEI", "SHIBOU"})
#: reason → the 住民種別 it applies to (1.2.2: ※日本人住民のみ / ※外国人住民のみ)
_RESIDENT_TYPE = {"SHOKKEN_KISAI_KIKA": "JAPANESE", "SHOKKEN_SHOJO_KOKUSEKI_SOSHITSU": "JAPANESE",
                  "SHOKKEN_KISAI_KOKUSEKI_SOSHITSU": "FOREIGN", "SHOKKEN_SHOJO_KIKA": "FOREIGN",
                  "TSUSHO_KISAI": "FOREIGN", "TSUSHO_SAKUJO": "FOREIGN"}
#: reason → (path it needs, Japanese name)
_NEEDS = {"TENSHUTSU": ("moved_out", "転出"), "KOKUGAI_TENSHUTSU": ("moved_out", "転出"),
          "TORIKESHI_ZO": ("change/cancelled_history_number", "取消対象履歴番号"),
          "TORIKESHI_GEN": ("change/cancelled_history_number", "取消対象履歴番号"),
          "TORIKESHI_SHUSEI": ("change/cancelled_history_number", "取消対象履歴番号"),
          "TSUSHO_KISAI": ("name/alias_name", "通称")}


def _dates(r: Mapping[str, Any], paths: tuple[str, ...]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for path in paths:
        value: Any = r
        for part in path.split("/"):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, Mapping):
            yield path, value


_REGISTRY_DATES = ("birth_date", "change/effective_date", "became_resident_date", "address_since",
                   "foreign_resident/became_resident_date")


def _registry_dates(r: Mapping[str, Any]) -> _Findings:
    out: list[_Finding] = []
    for path, value in _dates(r, _REGISTRY_DATES):
        text, ref = str(value.get("text", "")), value.get("reference_date")
        day = calendar_date(text)
        if day is None and ref is None:
            out.append(("R430", f"{path}/reference_date",
                        f"{path} is not a calendar date (不詳日 or 暦上日以外): it needs reference_date, the "
                        "registry's internal date (住民記録 standard 1.1.8)", None, "a date"))
        elif day is not None and ref is not None and ref != day:
            out.append(("R430", f"{path}/reference_date",
                        f"{path}: reference_date differs from the calendar date its text spells", ref,
                        "the date of text, or text as the registry wrote the date"))
    effective = r["change"].get("effective_date") or {}
    if calendar_date(str(effective.get("text", ""))) is None and (
            r["change"].get("reason") not in _UNKNOWN_DAY_ALLOWED):
        out.append(("R430", "change/effective_date/text",
                    "only 出生 and 死亡 may have a 異動日 that is not a calendar date (1.1.8)",
                    effective.get("text"), "YYYY-MM-DD"))
    return out


def _order(r: Mapping[str, Any]) -> _Findings:
    change = r["change"]
    born, eff, proc = reference_date(r.get("birth_date")), reference_date(change.get("effective_date")), \
        change.get("processed_date")
    out: list[_Finding] = []
    if born is not None and eff is not None and born > eff:
        out.append(("R410", "birth_date", "生年月日 (birth_date) is after 異動日 (effective_date)",
                    born, "on or before change/effective_date"))
    if eff is not None and isinstance(proc, date) and proc < eff and change.get("reason") not in _ADVANCE:
        out.append(("R410", "change/processed_date",
                    f"処理日 (processed_date) is before 異動日 (effective_date) {eff.isoformat()}; "
                    "only 転出 / 国外転出 may be processed in advance", proc.isoformat(),
                    f"on or after {eff.isoformat()}"))
    return out


def _by_reason(r: Mapping[str, Any]) -> _Findings:
    change = r["change"]
    reason = change.get("reason")
    out: list[_Finding] = []
    need = _NEEDS.get(reason)
    if need is not None:
        value: Any = r
        for part in need[0].split("/"):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            out.append(("R430", need[0], f"{reason} needs {need[0].rsplit('/', 1)[-1]} ({need[1]})", None,
                        "a value"))
    wanted = _RESIDENT_TYPE.get(reason)
    if wanted is not None and r.get("resident_type") != wanted:
        out.append(("R430", "resident_type", f"{reason} applies to {wanted} residents only (1.2.2)",
                    r.get("resident_type"), wanted))
    if change.get("cancelled_reason") is not None and change.get("cancelled_history_number") is None:
        out.append(("R430", "change/cancelled_reason",
                    "取消対象異動事由 (cancelled_reason) comes with cancelled_history_number", None,
                    "cancelled_history_number"))
    return out


def _person(r: Mapping[str, Any]) -> _Findings:
    name = r.get("name") or {}
    rtype = r.get("resident_type")
    out: list[_Finding] = []
    if not name.get("family_name") and not name.get("name_alphabet"):
        out.append(("R430", "name/family_name", "a name needs 氏 (family_name) or 氏名（アルファベット）",
                    None, "family_name or name_alphabet"))
    if name.get("kana_status") is not None and not (name.get("family_name_kana") or name.get("given_name_kana")):
        out.append(("R430", "name/kana_status", "振り仮名確認フラグ (kana_status) without a 振り仮名",
                    name.get("kana_status"), "absent, or a family_name_kana / given_name_kana"))
    for flag, kana in (("former_family_name_kana_status", "former_family_name_kana"),
                       ("alias_name_kana_status", "alias_name_kana")):  # 1.1.18: 旧氏 and 通称 have their own flag
        if name.get(flag) is not None and not name.get(kana):
            out.append(("R430", f"name/{flag}", f"フリガナ確認フラグ ({flag}) without its 振り仮名 ({kana})",
                        name.get(flag), f"absent, or a {kana}"))
    if r.get("foreign_resident") is not None and rtype != "FOREIGN":
        out.append(("R430", "foreign_resident", "外国人住民の事項 (foreign_resident) only for FOREIGN residents",
                    None, "absent for JAPANESE residents"))
    if r.get("domicile") is not None and rtype != "JAPANESE":
        out.append(("R430", "domicile", "戸籍の表示 (domicile) only for JAPANESE residents", None,
                    "absent for FOREIGN residents"))
    return out


def _support_measure(r: Mapping[str, Any]) -> _Findings:
    measure = r["measure"]
    start, end = measure.get("start_date"), measure.get("end_date")
    if isinstance(start, date) and isinstance(end, date) and end < start:
        return [("R410", "measure/end_date", "支援措置の終了年月日 (end_date) is before its 開始年月日 (start_date)",
                 end.isoformat(), f"on or after {start.isoformat()}")]
    if measure.get("action") == "KAIJO" and end is None:
        return [("R430", "measure/end_date", "a 支援措置 released (KAIJO) needs the day it ended (end_date)",
                 None, "measure/end_date present")]
    return _OK


def standard_rules() -> Iterator[tuple[tuple[str, ...], _Check]]:
    """(the paths a rule needs, the rule): the v2 rules, for bus.validation.rules."""
    yield ("birth_date/text", "change/effective_date/text", "change/reason"), _registry_dates
    yield ("birth_date/reference_date", "change/effective_date/reference_date", "change/processed_date"), _order
    yield ("change/reason", "change/cancelled_reason", "resident_type", "moved_out"), _by_reason
    yield ("name/name_alphabet", "name/kana_status", "name/former_family_name_kana_status",
           "name/alias_name_kana_status", "foreign_resident", "domicile", "resident_type"), _person
    yield ("measure/action", "measure/start_date", "measure/end_date"), _support_measure
