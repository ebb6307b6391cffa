"""The notice projections: an お知らせ to a resident through マイナポータル.

- `togo_oshirase` (the shipped routes, routes/portal.yaml): the notice goes to the 団体内統合宛名
  function (`togo.oshirase`), as the standard has it (j1150: the function is the path to the
  中間サーバー side, お知らせ included). It carries the text and who the notice is about (宛名番号,
  世帯, 続柄, the numbers the registry knows); the function addresses it — to the 世帯主 it
  knows for `householder`, even when the message does not name one — and sends portal.oshirase
  onwards (adapters/simulators/togo.py).
- `portal_oshirase`: the notice addressed here, for a route straight to the portal.

A route names a template in its params (`template: jido_teate`); the notice is built from
one message, addressed by 団体内統合宛名番号, and never holds a 個人番号, a name or an address.

Whom it is addressed to (`addressee` in the params):
- `person` (the default): the person of the change;
- `householder`: the 世帯主, for the notices a parent acts on (児童手当 認定請求, 出生の手続): the
  householder's own change, or the record's `householder_integrated_address_number` (a
  jumin.idou v2 item, present where the registry keeps the numbers the 団体内統合宛名 function
  assigned). When the record carries neither, the notice falls back to the person of the
  change — a v1 message, or a v2 one without the item, cannot name the parent (docs/domain.md).

Title and body are fixed Japanese text plus the date of the change. Everything is
deterministic: the same message and route give the same notice, so a replay is recognised
as a duplicate by the portal (`notice_id`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from bus.catalog.spec import Field
from bus.routing.model import NamedProjection, ProjectionInput

__all__ = ["ADDRESSEES", "JST", "PORTAL_OSHIRASE", "TEMPLATES", "TOGO_OSHIRASE", "NoticeTemplate", "notice_id",
           "portal_oshirase", "recipient", "togo_oshirase"]

JST = timezone(timedelta(hours=9), "JST")
DEFAULT_VALID_DAYS = 90


@dataclass(frozen=True, slots=True)
class NoticeTemplate:
    key: str
    category: str
    title: str
    body: str  # str.format with {date}: 異動日 in Japanese ("2025年4月1日")


TEMPLATES: Mapping[str, NoticeTemplate] = {
    t.key: t
    for t in (
        NoticeTemplate(
            "jido_teate",
            "子育て",
            "児童手当の申請のご案内",
            "{date}付けの転入の届出を受け付けました。お子さまを養育している方は、児童手当の認定請求"
            "（申請）が必要です。転入した日の翌日から15日以内に申請すると、転入した月の翌月分から"
            "支給されます。マイナポータルからも申請できます。公務員の方は勤務先に申請してください。",
        ),
        NoticeTemplate(
            "shussei",
            "子育て",
            "出生に伴う手続のご案内",
            "{date}のご出生の届出を受け付けました。児童手当の認定請求は、出生日の翌日から15日以内に"
            "行ってください。あわせて、こども医療費助成、健康保険への加入、出産育児一時金などの"
            "手続をご確認ください。マイナポータルから申請できる手続もあります。",
        ),
        NoticeTemplate(
            "tennyu",
            "手続き",
            "転入に伴う手続のご案内",
            "{date}付けの転入の届出を受け付けました。国民健康保険、国民年金、介護保険、後期高齢者医療など、"
            "加入している制度によっては手続が必要です。詳しくはお住まいの市区町村の窓口または"
            "ホームページでご確認ください。",
        ),
    )
}


def notice_id(message_id: str | None, route: str, fallback: str) -> str:
    """A stable notice id: hash of the source message id and the route (32 hex digits).

    Without a message id (offline tests), `fallback` is hashed instead; it is built from
    values the portal receives anyway (municipality, 団体内統合宛名番号, 履歴番号).
    """
    basis = f"{message_id}|{route}" if message_id else f"{fallback}|{route}"
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]


def check_params(params: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    unknown = sorted(set(params) - {"template", "valid_days", "addressee"})
    if unknown:
        problems.append(f"unknown params {', '.join(unknown)} (known: template, valid_days, addressee)")
    if params.get("addressee", "person") not in ADDRESSEES:
        problems.append(f"params.addressee must be one of {', '.join(ADDRESSEES)}, got {params.get('addressee')!r}")
    template = params.get("template")
    if template not in TEMPLATES:
        problems.append(f"params.template must be one of {', '.join(TEMPLATES)}, got {template!r}")
    days = params.get("valid_days", DEFAULT_VALID_DAYS)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3650:
        problems.append(f"params.valid_days must be a number of days from 1 to 3650, got {days!r}")
    return problems


ADDRESSEES = ("person", "householder")


def recipient(record: Mapping[str, Any], addressee: str) -> str:
    """The 団体内統合宛名番号 a notice goes to (see the module doc): for `householder`, the
    世帯主's when the record knows it, else the person's own."""
    own = record.get("integrated_address_number")
    if addressee == "householder" and record.get("relationship") != "SETAINUSHI":
        own = record.get("householder_integrated_address_number") or own
    if not own:
        raise ValueError("the notice has no addressee: the message carries no 団体内統合宛名番号 "
                         "(a jumin.idou v2 message gets one from the 団体内統合宛名 function)")
    return str(own)


def _japanese_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _notice(record: Mapping[str, Any], p: ProjectionInput, to: str | None) -> dict[str, Any]:
    """The values of `p.route`'s notice about the person of `record` (addressed to `to`)."""
    template = TEMPLATES[str(p.route.projection.params["template"])]
    days = int(p.route.projection.params.get("valid_days", DEFAULT_VALID_DAYS))
    change = record.get("change") or {}
    effective = _as_date(change["effective_date"])
    processed = _as_date(change.get("processed_date") or effective)
    municipality = str(record.get("municipality_code") or p.context.get("municipality", ""))
    fallback = f"{municipality}|{to or record.get('address_number')}|{record.get('history_number')}"
    return {
        "notice_id": notice_id(p.message_id, p.route.name, fallback),
        "municipality_code": municipality,
        "recipient_integrated_address_number": to,
        "category": template.category,
        "title": template.title,
        "body": template.body.format(date=_japanese_date(effective)),
        "related_reason": str(change.get("reason", "")),
        "published_at": datetime.combine(processed, time(0, 0), tzinfo=JST),
        "expires_on": processed + timedelta(days=days),
    }


def portal_oshirase(record: Mapping[str, Any], p: ProjectionInput) -> dict[str, Any]:
    """Build the notice of `p.route`'s template for the person of `record`, addressed here."""
    to = recipient(record, str(p.route.projection.params.get("addressee", "person")))
    return _shape(_notice(record, p, to), p.target.fields)


def togo_oshirase(record: Mapping[str, Any], p: ProjectionInput) -> dict[str, Any]:
    """The notice of `p.route`'s template as the 団体内統合宛名 function receives it: the text,
    the person it is about and their household; the function addresses it (the 世帯主 for
    `addressee: householder`, from what it knows when the record does not say)."""
    values = _notice(record, p, None)
    values.update(
        address_number=record.get("address_number"), history_number=record.get("history_number"),
        integrated_address_number=record.get("integrated_address_number"),
        household_number=record.get("household_number"), relationship=record.get("relationship"),
        householder_integrated_address_number=record.get("householder_integrated_address_number"),
        addressee=str(p.route.projection.params.get("addressee", "person")),
    )
    return _shape(values, p.target.fields)


def _shape(values: Mapping[str, Any], fields: tuple[Field, ...]) -> dict[str, Any]:
    """Order and type the values as the target spec declares (unknown optional fields: None)."""
    out: dict[str, Any] = {}
    for f in fields:
        value = values.get(f.name)
        if isinstance(value, datetime) and f.type == "date":
            value = value.date()
        elif isinstance(value, date) and f.type == "string":
            value = value.isoformat()
        out[f.name] = value
    return out


PORTAL_OSHIRASE = NamedProjection(
    name="portal_oshirase",
    target_kind="portal.oshirase",
    function=portal_oshirase,
    description="notice (お知らせ) from a template (params.template), to the person of the change or its 世帯主 "
                "(params.addressee)",
    never=frozenset({"personal_number", "address_number"}),
    check_params=check_params,
)

TOGO_OSHIRASE = NamedProjection(
    name="togo_oshirase",
    target_kind="togo.oshirase",
    function=togo_oshirase,
    description="notice (お知らせ) from a template (params.template) for the 団体内統合宛名 function, which "
                "addresses it (params.addressee) and passes it on to マイナポータル",
    never=frozenset({"personal_number"}),
    check_params=check_params,
)
