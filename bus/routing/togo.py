"""The `togo_jumin` projection: a change for the 団体内統合宛名 function (togo.jumin).

The function (the standard's j1150) assigns the 団体内統合宛名番号, keeps the 副本 of
住民票関係情報 and is the path to the 中間サーバー. It gets the copy of the items its kind
declares (keyed by 宛名番号; never a 個人番号 unless a route declares a legal basis) plus
`fukuhon_items`: the 副本 items this change alters (bus.routing.context.CHANGED_BY_REASON,
the household included), so it knows when to send a 副本 update.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bus.routing.model import NamedProjection, ProjectionInput

__all__ = ["TOGO_JUMIN", "togo_jumin"]


def togo_jumin(record: Mapping[str, Any], p: ProjectionInput) -> dict[str, Any]:
    out: dict[str, Any] = p.copy(record)
    out["fukuhon_items"] = list(p.context.get("changed") or ())
    return out


TOGO_JUMIN = NamedProjection(
    name="togo_jumin",
    target_kind="togo.jumin",
    function=togo_jumin,
    description="change for the 団体内統合宛名 function: the copy plus the 副本 items it alters",
    never=frozenset({"personal_number"}),
)
