"""jumin.idou v1 ⇄ v2: a v1 record as the 住民記録 standard's items say it (issue 12), and
the v1 view of a v2 record for the projection kinds that are still v1.

    v2 = upgrade_jumin_idou(v1_record)      # a new dict; the input is not touched
    v1 = v1_view(v2_record)                 # lossy: what a v1 projection can carry

What changes, and where v1 does not say enough (documented in docs/domain.md):

- 異動事由: v1's collapsed reasons become the standard's (1.2.2). SHIMEI_HENKO (not a
  standard reason) → SHOKKEN_SHUSEI; KOJIN_BANGO_HENKO → KOJIN_BANGO_HENKO_SEIKYU and
  JUMINHYO_CODE_HENKO → JUMINHYO_CODE_HENKO_SEIKYU (the usual case; v1 cannot say 職権);
  KYUUJI / TSUSHO → 記載 when the record holds the 旧氏 / 通称, else 削除; TORIKESHI →
  TORIKESHI_GEN when the person is removed afterwards, else TORIKESHI_SHUSEI (v1 cannot tell
  a cancelled decrease, TORIKESHI_ZO, from a cancelled correction).
- 住民状態: REMOVED → TENSHUTSU, SHIBOU or SHOJO by the reason.
- dates → RegistryDate (text "YYYY-MM-DD" and the same reference_date).
- 続柄: the standard's words (1.1.11); SOFU/SOBO (祖父/祖母, 実装しない in the standard, and
  ambiguous between 父の父 and 母の父) → 縁故者.
- 転出先 (moved_out_to / moved_out_country) → moved_out.planned_address, not confirmed.
- 国民年金 第2号 → NONE (the registry does not record 第2号); `welfare` (not a 住民票 item) is
  dropped; the v2-only items (障害認定, 介護 household, 支援措置 …) read as not set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

__all__ = ["REASONS_V1_TO_V2", "RELATIONSHIPS_V1_TO_V2", "calendar_date", "is_v2", "reference_date",
           "registry_date", "source_for", "upgrade_jumin_idou", "v1_view"]

#: v1 ChangeReason → v2 ChangeReason2 where one maps to one (the others: `_reason`)
REASONS_V1_TO_V2: Mapping[str, str] = {
    **{s: s for s in ("TENNYU", "KOKUGAI_TENNYU", "SHUSSEI", "SHOKKEN_KISAI", "TENSHUTSU",
                      "KOKUGAI_TENSHUTSU", "SHIBOU", "SHOKKEN_SHOJO", "TENKYO", "KEIBI_SHUSEI",
                      "SHOKKEN_SHUSEI", "GOKI_SHUSEI", "SETAI_BUNRI", "SETAI_GAPPEI", "SETAI_HENKO",
                      "SETAINUSHI_HENKO")},
    "SHIMEI_HENKO": "SHOKKEN_SHUSEI",
    "KOJIN_BANGO_HENKO": "KOJIN_BANGO_HENKO_SEIKYU",
    "JUMINHYO_CODE_HENKO": "JUMINHYO_CODE_HENKO_SEIKYU",
}

#: v1 Relationship symbol → the standard's 続柄 (1.1.11)
RELATIONSHIPS_V1_TO_V2: Mapping[str, str] = {
    "SETAINUSHI": "世帯主", "OTTO": "夫", "TSUMA": "妻", "KO": "子", "CHICHI": "父", "HAHA": "母",
    "ANI": "兄", "ANE": "姉", "OTOUTO": "弟", "IMOUTO": "妹", "KO_NO_OTTO": "子の夫",
    "KO_NO_TSUMA": "子の妻", "KO_NO_KO": "子の子", "OTTO_NO_CHICHI": "夫の父", "OTTO_NO_HAHA": "夫の母",
    "TSUMA_NO_CHICHI": "妻の父", "TSUMA_NO_HAHA": "妻の母", "SOFU": "縁故者", "SOBO": "縁故者",
    "ENKOSHA": "縁故者", "DOUKYONIN": "同居人",
}

_REMOVED_BY_REASON = {"TENSHUTSU": "TENSHUTSU", "KOKUGAI_TENSHUTSU": "TENSHUTSU", "SHIBOU": "SHIBOU"}


_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def calendar_date(text: str) -> date | None:
    """The calendar date a RegistryDate text spells (YYYY-MM-DD), else None (不詳日, 2023-02-29)."""
    if not _ISO.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def reference_date(value: Any) -> date | None:
    """The date to compute with: a date as it is; of a RegistryDate its reference_date, else the
    calendar date its text spells; None when there is none."""
    if isinstance(value, date):
        return value
    if not isinstance(value, Mapping):
        return None
    ref = value.get("reference_date")
    if isinstance(ref, date):
        return ref
    return calendar_date(str(value.get("text", "")))


def is_v2(record: Mapping[str, Any]) -> bool:
    """A jumin.idou v2 record (its birth date is a RegistryDate), not a v1 one."""
    return isinstance(record.get("birth_date"), Mapping)


def registry_date(value: date | str | None) -> dict[str, Any] | None:
    """A v2 RegistryDate of a calendar date (text as ISO, the same reference date)."""
    if value is None:
        return None
    day = value if isinstance(value, date) else date.fromisoformat(value)
    return {"text": day.isoformat(), "reference_date": day}


def _reason(v1: Mapping[str, Any]) -> str:
    reason = str(v1["change"]["reason"])
    name = v1.get("name") or {}
    if reason == "KYUUJI":
        return "KYUUJI_KISAI" if name.get("former_family_name") else "KYUUJI_SAKUJO"
    if reason == "TSUSHO":
        return "TSUSHO_KISAI" if name.get("alias_name") else "TSUSHO_SAKUJO"
    if reason == "TORIKESHI":
        return "TORIKESHI_GEN" if v1.get("resident_status") == "REMOVED" else "TORIKESHI_SHUSEI"
    try:
        return REASONS_V1_TO_V2[reason]
    except KeyError:
        raise ValueError(f"change/reason: {reason!r} is not a jumin.idou v1 reason") from None


def _address(a: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"address_code": None, **{k: a.get(k) for k in ("postal_code", "prefecture", "city", "town",
                                                            "banchi", "building")}, "country": None}


def _moved_out(v1: Mapping[str, Any]) -> dict[str, Any] | None:
    to, country = v1.get("moved_out_to"), v1.get("moved_out_country")
    if to is None and country is None:
        return None
    planned = _address(to) if to is not None else {
        "address_code": None, "postal_code": None, "prefecture": None, "city": None, "town": None,
        "banchi": None, "building": None, "country": country}
    return {"planned_address": planned, "planned_date": None, "confirmed_address": None,
            "move_in_notice_date": None, "confirmed": False}


def _insurance(ins: Mapping[str, Any] | None) -> dict[str, Any]:
    ins = ins or {}
    category = str(ins.get("nenkin_category") or "NONE")
    return {
        "kokuho": bool(ins.get("kokuho")), "kokuho_acquired": None, "kokuho_lost": None,
        "kokuho_household": bool(ins.get("kokuho_household")),
        "kaigo": bool(ins.get("kaigo")), "kaigo_acquired": None, "kaigo_lost": None, "kaigo_household": False,
        "koki": bool(ins.get("koki")), "koki_acquired": None, "koki_lost": None,
        "koki_disability_certified": False,
        "nenkin_category": "NONE" if category == "DAI2GO" else category,
        "basic_pension_number": None,
        "jido_teate": bool(ins.get("jido_teate")),
    }


def upgrade_jumin_idou(v1: Mapping[str, Any]) -> dict[str, Any]:
    """The v2 record of a (validated) v1 record; ValueError names a field v1 cannot hold."""
    change = v1["change"]
    reason = _reason(v1)
    status = str(v1.get("resident_status"))
    if status == "REMOVED":
        status = _REMOVED_BY_REASON.get(reason, "SHOJO")
    name = dict(v1.get("name") or {})
    relationship = v1.get("relationship")
    return {
        **{k: v1.get(k) for k in ("municipality_code", "address_number", "history_number", "resident_code",
                                  "personal_number", "integrated_address_number", "household_number")},
        "change": {
            "reason": reason,
            "effective_date": registry_date(change.get("effective_date")),
            "notified_date": change.get("notified_date"),
            "processed_date": change.get("processed_date"),
            "cancelled_history_number": change.get("cancelled_history_number"),
            "cancelled_reason": None,
            "notification_id": None,
            "notification_size": None,
        },
        "resident_type": v1.get("resident_type"),
        "resident_status": status,
        "name": {
            "family_name": name.get("family_name"), "given_name": name.get("given_name"), "name_alphabet": None,
            "family_name_kana": name.get("family_name_kana"), "given_name_kana": name.get("given_name_kana"),
            "kana_status": None,
            **{k: name.get(k) for k in ("former_family_name", "former_family_name_kana", "alias_name",
                                        "alias_name_kana")},
        },
        "birth_date": registry_date(v1.get("birth_date")),
        "sex": v1.get("sex"),
        "relationship": None if relationship is None else RELATIONSHIPS_V1_TO_V2[str(relationship)],
        "householder_name": None,
        "nationality": v1.get("nationality"),
        "foreign_resident": None,
        "domicile": None,
        "became_resident_date": None,
        "address_since": None,
        "address": _address(v1.get("address")),
        "previous_address": _address(v1.get("previous_address")),
        "moved_out": _moved_out(v1),
        "mailing_address": None,
        "support_measure": False,
        "elector_registered": None,
        "insurance": _insurance(v1.get("insurance")),
    }


#: v2 reasons without a v1 twin → the v1 reason a v1 projection carries
_V2_TO_V1_REASON = {
    "SHOKKEN_KISAI_KIKA": "SHOKKEN_KISAI", "SHOKKEN_KISAI_KOKUSEKI_SOSHITSU": "SHOKKEN_KISAI",
    "KAISEI_KISAI": "SHOKKEN_KISAI", "SAISEI_KISAI": "SHOKKEN_KISAI", "TORIKESHI_ZO": "TORIKESHI",
    "SHOKKEN_SHOJO_KIKA": "SHOKKEN_SHOJO", "SHOKKEN_SHOJO_KOKUSEKI_SOSHITSU": "SHOKKEN_SHOJO",
    "KAISEI_SHOJO": "SHOKKEN_SHOJO", "SAISEI_SHOJO": "SHOKKEN_SHOJO", "TORIKESHI_GEN": "TORIKESHI",
    "TORIKESHI_SHUSEI": "TORIKESHI", "KOJIN_BANGO_HENKO_SEIKYU": "KOJIN_BANGO_HENKO",
    "KOJIN_BANGO_SHOKKEN_SHUSEI": "KOJIN_BANGO_HENKO", "KOJIN_BANGO_SHOKKEN_KISAI": "KOJIN_BANGO_HENKO",
    "JUMINHYO_CODE_HENKO_SEIKYU": "JUMINHYO_CODE_HENKO", "JUMINHYO_CODE_SHOKKEN_KISAI": "JUMINHYO_CODE_HENKO",
    "KYUUJI_KISAI": "KYUUJI", "KYUUJI_HENKO": "KYUUJI", "KYUUJI_SAKUJO": "KYUUJI", "TSUSHO_KISAI": "TSUSHO",
    "TSUSHO_SAKUJO": "TSUSHO", "KUKAN_IDOU": "TENKYO",
}
#: the standard's 続柄 → a v1 symbol (chains v1 cannot say, such as 妻の子, become ENKOSHA)
RELATIONSHIPS_V2_TO_V1: Mapping[str, str] = {
    **{words: symbol for symbol, words in RELATIONSHIPS_V1_TO_V2.items() if symbol not in ("SOFU", "SOBO")},
    "夫（未届）": "OTTO", "妻（未届）": "TSUMA",
}


def _v1_address(a: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if a is None or not a.get("prefecture"):
        return None
    return {k: a.get(k) or ("-" if k in ("town", "banchi") else None)
            for k in ("postal_code", "prefecture", "city", "town", "banchi", "building")}


#: what a v1 projection kind (振り仮名 required) carries for a person without one: one ideographic
#: space, the only katakana-pattern value that says nothing (v2 has no 振り仮名 for many
#: foreign residents and, during the transition, for others)
NO_KANA = "\u3000"


def _v1_name(name: Mapping[str, Any]) -> dict[str, Any]:
    """v1's PersonName: an alphabet-only name splits at its first space (氏, 名); 振り仮名 absent → NO_KANA."""
    family, given = name.get("family_name"), name.get("given_name")
    if not family and name.get("name_alphabet"):
        first, _, rest = str(name["name_alphabet"]).partition(" ")
        family, given = first, given or rest or first
    return {"family_name": family, "given_name": given or family,
            "family_name_kana": name.get("family_name_kana") or NO_KANA,
            "given_name_kana": name.get("given_name_kana") or NO_KANA,
            **{k: name.get(k) for k in ("former_family_name", "former_family_name_kana", "alias_name",
                                        "alias_name_kana")}}


def v1_view(v2: Mapping[str, Any]) -> dict[str, Any]:
    """The v1 record a v1 projection kind can carry of a v2 record (lossy: the v2-only items
    are dropped; reasons, 続柄 and 住民状態 fall back to the nearest v1 code; dates are the
    registry's reference dates; a missing 振り仮名 is NO_KANA)."""
    change = v2["change"]
    reason = str(change.get("reason"))
    name = v2.get("name") or {}
    moved = v2.get("moved_out") or {}
    planned = moved.get("confirmed_address") or moved.get("planned_address") or {}
    ins = v2.get("insurance") or {}
    relationship = v2.get("relationship")
    return {
        **{k: v2.get(k) for k in ("municipality_code", "address_number", "history_number", "resident_code",
                                  "personal_number", "integrated_address_number", "household_number")},
        "change": {"reason": _V2_TO_V1_REASON.get(reason, reason),
                   "effective_date": reference_date(change.get("effective_date")),
                   "notified_date": change.get("notified_date"), "processed_date": change.get("processed_date"),
                   "cancelled_history_number": change.get("cancelled_history_number")},
        "resident_type": v2.get("resident_type"),
        "resident_status": "RESIDENT" if v2.get("resident_status") == "RESIDENT" else "REMOVED",
        "name": _v1_name(name),
        "birth_date": reference_date(v2.get("birth_date")),
        "sex": v2.get("sex"),
        "relationship": "SETAINUSHI" if relationship is None else RELATIONSHIPS_V2_TO_V1.get(relationship, "ENKOSHA"),
        "nationality": v2.get("nationality"),
        "address": _v1_address(v2.get("address")),
        "previous_address": _v1_address(v2.get("previous_address")),
        "moved_out_to": _v1_address(planned),
        "moved_out_country": planned.get("country"),
        "insurance": {**{k: bool(ins.get(k)) for k in ("kokuho", "kokuho_household", "kaigo", "koki", "jido_teate")},
                      "nenkin_category": "DAI1GO" if ins.get("nenkin_category") == "NINI_KANYU"
                      else ins.get("nenkin_category") or "NONE",
                      "welfare": False},
        # not a v1 item: no v1 kind declares it, so no copy carries it; the notices read it
        "householder_integrated_address_number": v2.get("householder_integrated_address_number"),
    }


def source_for(record: Mapping[str, Any], source_version: int) -> Mapping[str, Any]:
    """The jumin.idou record a projection kind copies from (its spec's `source_version`): the
    v1 view of a v2 record for a v1-shaped kind, the v2 upgrade of a v1 record for a v2-shaped
    one, else the record itself. Anything else (an application) is passed through."""
    if "change" not in record:
        return record
    if source_version == 2:
        return record if is_v2(record) else upgrade_jumin_idou(record)
    return v1_view(record) if is_v2(record) else record
