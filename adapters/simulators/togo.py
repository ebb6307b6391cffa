"""The simulated 団体内統合宛名 function (the standard's j1150): what the `togo` simulator does
with each change it accepts.

- **Numbers**: the 団体内統合宛名番号 of a person (municipality + 宛名番号) is the one the
  registry sent, else the one assigned before, else a new one (``8`` + a serial, 15 digits
  at most): residents and 住登外者 alike get one, once.
- **副本** of 住民票関係情報: per number, the items the 中間サーバー keeps — name, birth date,
  sex, address, status — and the household: 世帯番号 and 続柄, with the household's members.
- **Updates to the 中間サーバー**: a change whose `fukuhon_items` is not empty produces one 副本
  update (the 世帯 changes included: 世帯分離/合併/変更/世帯主変更 alter the household item),
  counted in `updates`, each carrying the number, never a 個人番号 or a 宛名番号.

- **お知らせ** (`togo.oshirase`, the `togo_oshirase` simulator, which shares the function of the
  `togo` one in a cluster): the function addresses each notice and passes it on to マイナポータル
  as portal.oshirase, with the 団体内統合宛名番号 only (never a 宛名番号 or a 個人番号). For
  `householder`: the person's own number when they are the 世帯主, else the 世帯主's number the
  record carries, else the 世帯主 the function knows in the person's household, else the
  person's own number (assigned now if need be). For `person`: the person's number.

The simulator is the only place a change turns into a 副本 update, and a notice request into a
notice (routes send nothing to the 中間サーバー or the portal directly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEATHS", "FukuhonUpdate", "IntegratedAddressFunction", "fukuhon_record"]

DEATHS = frozenset({"SHIBOU"})  # the 異動事由 of a death (v1 and v2 alike)
HOUSEHOLDER = frozenset({"SETAINUSHI", "世帯主"})  # the 世帯主's 続柄 in v1 and v2


@dataclass(frozen=True, slots=True)
class FukuhonUpdate:
    """One 副本 update for the 中間サーバー (keyed by 団体内統合宛名番号)."""

    integrated_address_number: str
    history_number: int
    items: tuple[str, ...]
    fukuhon: dict[str, Any]


@dataclass
class IntegratedAddressFunction:
    numbers: dict[tuple[str, str], str] = field(default_factory=dict)
    fukuhon: dict[str, dict[str, Any]] = field(default_factory=dict)
    households: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # → number: 続柄
    #: number → the household it is a member of in `households` (so that a change finds the
    #: person's old household at once: scanning every household made the n-th change cost n)
    member_of: dict[str, tuple[str, str]] = field(default_factory=dict)
    updates: list[FukuhonUpdate] = field(default_factory=list)
    _serial: int = 0

    def number_of(self, municipality: str, address_number: str, given: str | None = None) -> str:
        """The 団体内統合宛名番号 of a person: the registry's, the one assigned, or a new one."""
        key = (municipality, address_number)
        if given:
            self.numbers[key] = given
        if key not in self.numbers:
            self._serial += 1
            self.numbers[key] = f"8{self._serial:014d}"
        return self.numbers[key]

    def clear(self) -> None:
        """Forget every number, 副本 and update (the state is shared: cleared, not replaced)."""
        self.numbers.clear()
        self.fukuhon.clear()
        self.households.clear()
        self.member_of.clear()
        self.updates.clear()
        self._serial = 0

    def householder(self, municipality: str, household_number: str) -> str | None:
        """The number of the 世帯主 the function knows in a household (None: none known)."""
        members = self.households.get((municipality, household_number), {})
        return next((number for number, relationship in members.items() if relationship in HOUSEHOLDER), None)

    def addressee(self, request: dict[str, Any]) -> str:
        """The 団体内統合宛名番号 a togo.oshirase request goes to (see the module doc)."""
        municipality = str(request["municipality_code"])
        own = self.number_of(municipality, str(request["address_number"]), request.get("integrated_address_number"))
        if request.get("addressee") != "householder" or request.get("relationship") in HOUSEHOLDER:
            return own
        given = request.get("householder_integrated_address_number")
        return str(given) if given else self.householder(municipality, str(request["household_number"])) or own

    def notice(self, request: dict[str, Any]) -> dict[str, Any]:
        """The portal.oshirase record of a togo.oshirase request: addressed, without a 宛名番号."""
        return {
            "notice_id": request["notice_id"], "municipality_code": request["municipality_code"],
            "recipient_integrated_address_number": self.addressee(request),
            **{k: request.get(k) for k in ("category", "title", "body", "related_reason", "published_at",
                                           "expires_on")},
        }

    def forward(self, kind: str, record: dict[str, Any], fields: Any) -> tuple[dict[str, Any], int] | None:
        """What the function sends onwards for one record it accepted, with its sequence: the
        portal.oshirase of a togo.oshirase request; the chukan.fukuhon record (of `fields`) of a
        togo.jumin change, or None when the change alters no 副本 item."""
        if kind == "togo.oshirase":
            return self.notice(record), int(record["history_number"])
        update = self.apply(record)
        if update is None:
            return None
        out = fukuhon_record(record, update, fields)
        if "householder_integrated_address_number" in out and not out["householder_integrated_address_number"]:
            out["householder_integrated_address_number"] = self.householder(
                str(record["municipality_code"]), str(record["household_number"]))  # v2: its household lookup
        return out, update.history_number

    def apply(self, change: dict[str, Any]) -> FukuhonUpdate | None:
        """Take one togo.jumin record; the 副本 update it produces, if any."""
        municipality = str(change["municipality_code"])
        number = self.number_of(municipality, str(change["address_number"]), change.get("integrated_address_number"))
        household = (municipality, str(change["household_number"]))
        before = self.member_of.pop(number, None)
        if before is not None:
            self.households[before].pop(number, None)
        removed = change.get("resident_status") == "REMOVED"
        if not removed:
            self.households.setdefault(household, {})[number] = str(change.get("relationship", ""))
            self.member_of[number] = household
        items = tuple(change.get("fukuhon_items") or ())
        entry = {
            "name": change.get("name"), "birth_date": change.get("birth_date"), "sex": change.get("sex"),
            "address": change.get("address"), "resident_status": change.get("resident_status"),
            "household_number": household[1], "relationship": change.get("relationship"),
            "household_members": sorted(self.households.get(household, {})),
            "deceased": (change.get("change") or {}).get("reason") in DEATHS,
        }
        self.fukuhon[number] = entry
        if not items:
            return None
        update = FukuhonUpdate(number, int(change["history_number"]), items, entry)
        self.updates.append(update)
        return update


def fukuhon_record(change: dict[str, Any], update: FukuhonUpdate, fields: Any) -> dict[str, Any]:
    """The chukan.fukuhon record of an update: the fields of that kind copied by name from the
    change, keyed by the 団体内統合宛名番号, with deceased / death_date; never a 宛名番号."""
    out = _copy(change, fields)
    reason = (change.get("change") or {}).get("reason")
    out.update(integrated_address_number=update.integrated_address_number)
    if "household_members" in out:  # chukan.fukuhon v2: the 副本's 世帯構成, by 団体内統合宛名番号
        out["household_members"] = list(update.fukuhon["household_members"])
    if "deceased" in out:
        out["deceased"] = reason in DEATHS
    if "death_date" in out:
        out["death_date"] = (change.get("change") or {}).get("effective_date") if reason in DEATHS else None
    out.pop("address_number", None)
    out.pop("personal_number", None)
    return out


def _copy(record: dict[str, Any], fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        value = record.get(f.name)
        out[f.name] = _copy(value, f.children) if f.type == "record" and isinstance(value, dict) else value
    return out
