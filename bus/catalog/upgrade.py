"""jumin.idou v1 → v2: a v1 record as the 住民記録 standard's items say it (issue 12).

    v2 = upgrade_jumin_idou(v1_record)      # a new dict; the input is not touched

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

from collections.abc import Mapping
from datetime import date
from typing import Any

__all__ = ["REASONS_V1_TO_V2", "RELATIONSHIPS_V1_TO_V2", "registry_date", "upgrade_jumin_idou"]

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
