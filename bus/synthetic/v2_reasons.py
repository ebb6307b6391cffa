"""The 異動事由 of jumin.idou v2 that the v1 registry cannot write, for the demo's v2 feed.

`vary_reason(record)` takes a v2 record made by bus.synthetic.v2.to_v2 and, for about half of
the changes that have a v2-only sibling, relabels it with that sibling, keeping the record
valid (bus.validation.rules_v2) and its group (increase/decrease/correction):

- 職権記載 → 職権記載（帰化等） for a Japanese resident, 職権記載（国籍喪失） for a foreign one,
  改製（記載）, 再製（記載）;
- 死亡 with a calendar 異動日 → 職権消除, 職権消除（帰化等） (foreign), 職権消除（国籍喪失）
  (Japanese), 改製（消除）, 再製（消除）, the 住民状態 becoming 消除 (the v1 registry writes no
  職権消除, so a removal is borrowed: the person leaves the roll either way);
- a foreign resident's 国外転入 → 職権記載（国籍喪失）, 国外転出 → 職権消除（帰化等） (1 in 10:
  the v1 registry has few foreign 職権記載 and deaths to borrow from);
- 異動の取消し（修正） → 異動の取消し（増） (a cancelled decrease: the person stays on the roll)
  or （減） (a cancelled increase: the entry becomes 消除; the synthetic person's later changes
  go on, which a real registry would not write);
- 個人番号の変更請求 → 個人番号の職権修正, 個人番号の職権記載; 住民票コードの変更請求 →
  住民票コードの職権記載; 旧氏の記載 → 旧氏の変更, 旧氏の削除 (the 旧氏 removed); 通称の記載 →
  通称の削除 (the 通称 removed); 転居 → 区間異動 (standard 1.2.2, 1.1.13).

Deterministic: the choice is drawn from the 宛名番号 and 履歴番号.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["V2_ONLY_REASONS", "vary_reason"]

_BY_TYPE = {"JAPANESE": "KIKA", "FOREIGN": "KOKUSEKI_SOSHITSU"}
_SHOJO_BY_TYPE = {"JAPANESE": "KOKUSEKI_SOSHITSU", "FOREIGN": "KIKA"}
_SIBLINGS: Mapping[str, tuple[str, ...]] = {
    "TORIKESHI_SHUSEI": ("TORIKESHI_ZO", "TORIKESHI_GEN"),
    "KOJIN_BANGO_HENKO_SEIKYU": ("KOJIN_BANGO_SHOKKEN_SHUSEI", "KOJIN_BANGO_SHOKKEN_KISAI"),
    "JUMINHYO_CODE_HENKO_SEIKYU": ("JUMINHYO_CODE_SHOKKEN_KISAI",),
    "KYUUJI_KISAI": ("KYUUJI_HENKO", "KYUUJI_SAKUJO"),
    "TSUSHO_KISAI": ("TSUSHO_SAKUJO",),
    "TENKYO": ("KUKAN_IDOU",),
}
#: every reason vary_reason can write that the v1 registry's conversion never does
V2_ONLY_REASONS = frozenset({
    "SHOKKEN_KISAI_KIKA", "SHOKKEN_KISAI_KOKUSEKI_SOSHITSU", "KAISEI_KISAI", "SAISEI_KISAI",
    "SHOKKEN_SHOJO", "SHOKKEN_SHOJO_KIKA", "SHOKKEN_SHOJO_KOKUSEKI_SOSHITSU", "KAISEI_SHOJO", "SAISEI_SHOJO",
    *(s for siblings in _SIBLINGS.values() for s in siblings),
})
_RATE = {"KOKUGAI_TENNYU": 0.1, "KOKUGAI_TENSHUTSU": 0.1}  # else one in two
_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _in_advance(change: Mapping[str, Any]) -> bool:
    effective = (change.get("effective_date") or {}).get("reference_date")
    processed = change.get("processed_date")
    return effective is None or processed is None or processed < effective


def _choices(record: Mapping[str, Any]) -> tuple[str, ...]:
    change = record["change"]
    reason = str(change["reason"])
    kind = str(record.get("resident_type"))
    if reason == "SHOKKEN_KISAI":
        return (f"SHOKKEN_KISAI_{_BY_TYPE[kind]}", "KAISEI_KISAI", "SAISEI_KISAI")
    if reason == "SHIBOU" and _ISO.fullmatch(str((change.get("effective_date") or {}).get("text") or "")):
        return ("SHOKKEN_SHOJO", f"SHOKKEN_SHOJO_{_SHOJO_BY_TYPE[kind]}", "KAISEI_SHOJO", "SAISEI_SHOJO")
    if kind == "FOREIGN" and reason == "KOKUGAI_TENNYU":
        return ("SHOKKEN_KISAI_KOKUSEKI_SOSHITSU",)
    if kind == "FOREIGN" and reason == "KOKUGAI_TENSHUTSU" and not _in_advance(change):
        return ("SHOKKEN_SHOJO_KIKA",)  # only a 転出 may be processed before its 異動日 (R410)
    return _SIBLINGS.get(reason, ())


def vary_reason(record: dict[str, Any]) -> dict[str, Any]:
    """`record` (changed in place and returned), relabelled with a v2-only sibling or not."""
    choices = _choices(record)
    if not choices:
        return record
    rng = random.Random(f"reason|{record['address_number']}|{record['history_number']}")
    change = record["change"]
    if rng.random() >= _RATE.get(str(change["reason"]), 0.5):
        return record
    reason = choices[rng.randrange(len(choices))]
    change["reason"] = reason
    name = record["name"]
    if "SHOJO" in reason or reason == "TORIKESHI_GEN":
        record["resident_status"] = "SHOJO"
        record["moved_out"] = None
    if reason == "KYUUJI_SAKUJO":
        name["former_family_name"] = name["former_family_name_kana"] = None
    if reason == "TSUSHO_SAKUJO":
        name["alias_name"] = name["alias_name_kana"] = None
    return record
