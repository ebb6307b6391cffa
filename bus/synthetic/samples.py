"""Sample records of every catalog kind, made from the synthetic registry's people.

    for record in sample_records("kaigo.jumin", catalog, seed=1, n=3):
        catalog.get("kaigo.jumin").to_xml(record)

- ``jumin.idou``: the registry's own change records (`Registry.events`).
- projection kinds (``zei.jumin``, ``kokuho.jumin``, ... and ``chukan.fukuhon``): a change
  record copied field by field into the kind's fields (same names by design, see
  docs/architecture.md), taken from changes the shipped default route would send there (a
  ``kaigo.jumin`` sample is about someone aged 40 or over). This is not the routing
  projection (bus.routing.projection) and does not replace its tests.
- ``portal.oshirase``: a 児童手当 or 出生 notice for a resident of a matching change;
  ``togo.oshirase``: the same notice as the 団体内統合宛名 function receives it.
- ``portal.shinsei``: a 児童手当 認定請求 (with the children of the household) or a 転出届,
  from a resident of the registry's current snapshot; ``pittari.shinsei``: the same, as one
  application of a ぴったりサービス batch (no attachments).
- ``jumin.shien``: a 支援措置 set, extended or released after a resident's change
  (bus.synthetic.shien); ``shien.jumin``: the same as a 業務 system receives it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterator
from datetime import date, datetime, time, timedelta
from itertools import islice
from typing import Any

from bus.catalog import Catalog
from bus.catalog.codec import JST
from bus.catalog.spec import Field
from bus.routing.context import age_at_fiscal_year_start, changed_items
from bus.routing.context import age_on as legal_age
from bus.synthetic.model import age_on
from bus.synthetic.places import MUNICIPALITIES
from bus.synthetic.registry import DEFAULT_MUNICIPALITIES, REASONS, Registry, expand_reasons
from bus.synthetic.shien import SupportMeasures

__all__ = ["PROJECTION_KINDS", "SOURCE_KIND", "project_by_name", "sample_records"]

SOURCE_KIND = "jumin.idou"
_Rec = dict[str, Any]


def _age(r: _Rec) -> int:
    """Age from the birthday itself (後期高齢者医療 counts so)."""
    return age_on(r["birth_date"], r["change"]["effective_date"])


def _legal_age(r: _Rec) -> int:
    """Age as the law counts it (reached the day before the birthday)."""
    return legal_age(r["birth_date"], r["change"]["effective_date"])


def _child(r: _Rec) -> bool:
    """A 児童 of 児童手当法 第3条: to the first 31 March after reaching 18."""
    return age_at_fiscal_year_start(r["birth_date"], r["change"]["effective_date"]) < 18


_FUKUHON_REASONS = frozenset(
    {"TENNYU", "KOKUGAI_TENNYU", "SHUSSEI", "SHOKKEN_KISAI", "TENSHUTSU", "KOKUGAI_TENSHUTSU", "SHIBOU",
     "SHOKKEN_SHOJO", "TENKYO", "SHIMEI_HENKO", "SHOKKEN_SHUSEI", "GOKI_SHUSEI", "KEIBI_SHUSEI", "TORIKESHI"}
)

#: projection kind → which changes make plausible samples (as the shipped routes choose them)
PROJECTION_KINDS: dict[str, Callable[[_Rec], bool]] = {
    "zei.jumin": lambda r: True,
    "kokuho.jumin": lambda r: r["insurance"]["kokuho"] or r["insurance"]["kokuho_household"]
    or r["change"]["reason"] in ("TENNYU", "KOKUGAI_TENNYU", "SHUSSEI"),
    "kaigo.jumin": lambda r: _legal_age(r) >= 40 or r["insurance"]["kaigo"],
    "koki.jumin": lambda r: _age(r) >= 75 or r["insurance"]["koki"],
    "nenkin.jumin": lambda r: 20 <= _legal_age(r) < 60
    or (60 <= _legal_age(r) < 70 and r["insurance"]["nenkin_category"] in ("DAI1GO", "NINI_KANYU")),
    "fukushi.jumin": lambda r: _child(r) or r["insurance"]["jido_teate"],
    "chukan.fukuhon": lambda r: r["change"]["reason"] in _FUKUHON_REASONS,
    "togo.jumin": lambda r: True,
    "senkyo.jumin": lambda r: r["resident_type"] == "JAPANESE" and _legal_age(r) >= 18,
    "shugaku.jumin": lambda r: 5 <= age_at_fiscal_year_start(r["birth_date"], r["change"]["effective_date"]) <= 14,
}

_BANKS = (("みずほ銀行", "神田支店"), ("三菱UFJ銀行", "本店"), ("三井住友銀行", "新宿支店"),
          ("ゆうちょ銀行", "〇一八店"), ("りそな銀行", "梅田支店"), ("横浜銀行", "関内支店"))


def project_by_name(record: _Rec, fields: tuple[Field, ...]) -> _Rec:
    """A record of the target `fields`, copying every field of the same name (recursively)."""
    out: _Rec = {}
    for f in fields:
        value = record.get(f.name)
        if f.type == "record" and isinstance(value, dict):
            value = project_by_name(value, f.children)
        out[f.name] = value
    return out


def _togo(record: _Rec, fields: tuple[Field, ...]) -> _Rec:
    """A togo.jumin record: the copy plus the 副本 items the change alters."""
    out = project_by_name(record, fields)
    out["fukuhon_items"] = changed_items(record["change"]["reason"])
    return out


def _fukuhon(record: _Rec, fields: tuple[Field, ...]) -> _Rec:
    dead = record["change"]["reason"] == "SHIBOU"
    source = {**record, "deceased": dead, "death_date": record["change"]["effective_date"] if dead else None}
    return project_by_name(source, fields)


def _registry(seed: int, municipality: str | None) -> Registry:
    if municipality is None or municipality in DEFAULT_MUNICIPALITIES:
        return Registry(seed, municipalities=DEFAULT_MUNICIPALITIES, households=120)
    return Registry(seed, municipalities=(municipality,), households=120)


def _changes(reg: Registry, municipality: str | None, reasons: Collection[str] | None) -> Iterator[_Rec]:
    wanted = frozenset(expand_reasons(reasons)) if reasons else frozenset(REASONS)
    while True:
        for r in reg.events(1000, municipality, reasons or None):
            if r["change"]["reason"] in wanted:
                yield r


def _noticed(record: _Rec) -> bool:
    reason = record["change"]["reason"]
    return reason == "SHUSSEI" or (reason in ("TENNYU", "KOKUGAI_TENNYU") and _age(record) < 18)


def _oshirase(record: _Rec, seq: int) -> _Rec:
    muni = MUNICIPALITIES[record["municipality_code"]]
    processed: date = record["change"]["processed_date"]
    reason = record["change"]["reason"]
    if reason == "SHUSSEI":
        category, title = "子育て", "出生に伴う手続のご案内"
        body = (f"ご出産おめでとうございます。{muni.city}では、児童手当の認定請求、子ども医療費助成、"
                "健康保険への加入などの手続が必要です。マイナポータルの「ぴったりサービス」から電子申請できます。")
    else:
        category, title = "子育て", "児童手当の申請のご案内"
        body = (f"{muni.city}へようこそ。18歳到達後最初の3月31日までのお子さまを養育している方は、"
                "転入日の翌日から15日以内に児童手当の認定請求をしてください。"
                "マイナポータルの「ぴったりサービス」から電子申請できます。")
    published = datetime.combine(processed, time(9, 0), JST) + timedelta(seconds=seq)
    return {
        "notice_id": f"{record['municipality_code']}-{processed:%Y%m%d}-{seq:06d}",
        "municipality_code": record["municipality_code"],
        "recipient_integrated_address_number": record["integrated_address_number"],
        "category": category,
        "title": title,
        "body": body,
        "related_reason": reason,
        "published_at": published,
        "expires_on": processed + timedelta(days=60),
    }


def _oshirase_request(record: _Rec, seq: int) -> _Rec:
    """A togo.oshirase record: the notice as the 団体内統合宛名 function receives it (it addresses it)."""
    notice = _oshirase(record, seq)
    del notice["recipient_integrated_address_number"]
    return {**notice, "address_number": record["address_number"], "history_number": record["history_number"],
            "integrated_address_number": record.get("integrated_address_number"),
            "household_number": record["household_number"], "relationship": record.get("relationship"),
            "householder_integrated_address_number": None, "addressee": "householder"}


def _shinsei(reg: Registry, municipality: str | None, rng: random.Random) -> Iterator[_Rec]:
    households: dict[str, list[_Rec]] = {}
    for r in reg.snapshot(municipality):
        households.setdefault(r["household_number"], []).append(r)
    today = reg.today
    for members in households.values():
        adults = [m for m in members if age_on(m["birth_date"], today) >= 20]
        if not adults:
            continue
        applicant = adults[0]
        children = [m for m in members if age_on(m["birth_date"], today) < 18]
        submitted = datetime.combine(today, time(rng.randint(7, 22), rng.randint(0, 59), rng.randint(0, 59)),
                                     JST).replace(microsecond=rng.randint(0, 999) * 1000)
        items: list[_Rec] = []
        if children:
            code, name, number = "JT0001", "児童手当 認定請求", applicant["personal_number"]
            for i, child in enumerate(children, 1):
                items.append({"key": f"child.{i}.name",
                              "value": f"{child['name']['family_name']} {child['name']['given_name']}"})
                items.append({"key": f"child.{i}.birth_date", "value": child["birth_date"].isoformat()})
            bank, branch = _BANKS[rng.randrange(len(_BANKS))]
            items += [{"key": "bank.name", "value": bank}, {"key": "bank.branch", "value": branch}]
        else:
            code, name, number = "TS0001", "転出届（マイナンバーカード）", None
            moving = today + timedelta(days=rng.randint(3, 30))
            items += [{"key": "move.planned_date", "value": moving.isoformat()},
                      {"key": "move.people", "value": str(len(members))}]
        items.append({"key": "remarks", "value": ""})
        yield {
            "application_id": f"PS-{today:%Y-%m%d}-{rng.getrandbits(32):08x}",
            "municipality_code": applicant["municipality_code"],
            "procedure_code": code,
            "procedure_name": name,
            "submitted_at": submitted,
            "applicant": {
                "family_name": applicant["name"]["family_name"],
                "given_name": applicant["name"]["given_name"],
                "family_name_kana": applicant["name"]["family_name_kana"],
                "given_name_kana": applicant["name"]["given_name_kana"],
                "birth_date": applicant["birth_date"],
                "address": applicant["address"],
                "personal_number": number,
            },
            "items": items,
        }


def sample_records(
    kind: str,
    catalog: Catalog,
    *,
    seed: int = 0,
    n: int = 1,
    reasons: Collection[str] | None = None,
    municipality: str | None = None,
) -> Iterator[_Rec]:
    """`n` valid records of `kind` (a dict each, ready for ``KindSchema.to_xml/to_avro``).

    `reasons` (異動事由 symbols or group names) applies to jumin.idou and the projection
    kinds; ValueError for a kind it cannot apply to, or a kind with no sample builder.
    """
    ks = catalog.get(kind)
    reg = _registry(seed, municipality)
    if kind == SOURCE_KIND:
        yield from islice(_changes(reg, municipality, reasons), n)
        return
    if kind in PROJECTION_KINDS:
        fits = PROJECTION_KINDS[kind]
        build = {"chukan.fukuhon": _fukuhon, "togo.jumin": _togo}.get(kind, project_by_name)
        chosen = (build(r, ks.fields) for r in _changes(reg, municipality, reasons) if fits(r))
        yield from islice(chosen, n)
        return
    if reasons:
        raise ValueError(f"--event does not apply to {kind}")
    if kind in ("portal.oshirase", "togo.oshirase"):
        noticed = (r for r in _changes(reg, municipality, None) if _noticed(r))
        build_notice = _oshirase if kind == "portal.oshirase" else _oshirase_request
        yield from (build_notice(r, i) for i, r in enumerate(islice(noticed, n), 1))
        return
    if kind in ("portal.shinsei", "pittari.shinsei"):
        rng = random.Random(seed)
        made = 0
        while made < n:
            for record in _shinsei(reg, municipality, rng):
                yield record if kind == "portal.shinsei" else {**record, "attachments": []}
                made += 1
                if made >= n:
                    return
            for _ in reg.events(1000):  # let time pass and people change, then take more
                pass
        return
    if kind in ("jumin.shien", "shien.jumin"):
        measures = SupportMeasures(random.Random(seed), rate=0.5)
        made_measures = (m for r in _changes(reg, municipality, None) for m in measures.after(r))
        yield from islice((m if kind == "jumin.shien" else project_by_name(m, ks.fields) for m in made_measures), n)
        return
    raise ValueError(f"no sample builder for kind {kind!r}")
