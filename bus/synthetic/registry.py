"""`Registry`: a synthetic resident registry that evolves and reports its changes.

    >>> reg = Registry(seed=7)
    >>> [r["change"]["reason"] for r in reg.events(3)]
    ['TENSHUTSU', 'TENSHUTSU', 'TENSHUTSU']

Every person starts with history 1 (their 転入 or 出生, dated before `start`; see
`snapshot()`); each change after that adds exactly one to their 履歴番号. Removed persons
get no further changes except a TORIKESHI that cancels their removal. Generation is
deterministic for a seed (``random.Random(seed)``; nothing else is random).
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import date
from itertools import accumulate
from typing import Any

from bus.synthetic.book import Book, Roll
from bus.synthetic.corrections import CORRECTION
from bus.synthetic.factory import Factory, Random
from bus.synthetic.moves import DECREASE, INCREASE, kokugai_tennyu, tennyu
from bus.synthetic.places import MUNICIPALITIES
from bus.synthetic.records import to_record

__all__ = ["DEFAULT_MUNICIPALITIES", "REASONS", "REASON_GROUPS", "WEIGHTS", "Registry", "expand_reasons"]

#: The four municipalities of DESIGN §2: 千代田区, 札幌市, 大阪市, 横浜市.
DEFAULT_MUNICIPALITIES: tuple[str, ...] = ("131016", "011002", "271004", "141003")

_HANDLERS: dict[str, Callable[[Book, Roll], bool]] = {**INCREASE, **DECREASE, **CORRECTION}

#: 異動事由 by group, as in schemas/codelists.yaml.
REASON_GROUPS: dict[str, tuple[str, ...]] = {
    "increase": tuple(INCREASE),
    "decrease": tuple(DECREASE),
    "correction": tuple(CORRECTION),
}
#: Every ChangeReason symbol.
REASONS: tuple[str, ...] = tuple(_HANDLERS)

#: How often each change is drawn (per event; a household move yields a record per member).
WEIGHTS: dict[str, int] = {
    "TENNYU": 14, "KOKUGAI_TENNYU": 2, "SHUSSEI": 2, "SHOKKEN_KISAI": 1,
    "TENSHUTSU": 14, "KOKUGAI_TENSHUTSU": 2, "SHIBOU": 2, "SHOKKEN_SHOJO": 1,
    "TENKYO": 12, "SHIMEI_HENKO": 2, "KEIBI_SHUSEI": 2, "SHOKKEN_SHUSEI": 1, "GOKI_SHUSEI": 1,
    "KOJIN_BANGO_HENKO": 1, "JUMINHYO_CODE_HENKO": 1, "SETAI_BUNRI": 3, "SETAI_GAPPEI": 1,
    "SETAI_HENKO": 1, "SETAINUSHI_HENKO": 1, "KYUUJI": 1, "TSUSHO": 1, "TORIKESHI": 1,
}

#: When a change finds nobody it could happen to, this change first makes someone.
_PREPARE: dict[str, Callable[[Book, Roll], bool]] = {
    "SHUSSEI": lambda b, r: tennyu(b, r, "family"),
    "TSUSHO": lambda b, r: kokugai_tennyu(b, r, "foreign_family"),
    "KYUUJI": lambda b, r: tennyu(b, r, "couple"),
    "GOKI_SHUSEI": lambda b, r: tennyu(b, r, "family"),
    "SETAI_BUNRI": lambda b, r: tennyu(b, r, "stem_family"),
    "SETAINUSHI_HENKO": lambda b, r: tennyu(b, r, "family"),
    "SETAI_GAPPEI": CORRECTION["SETAI_BUNRI"],
    "SETAI_HENKO": CORRECTION["SETAI_BUNRI"],
    "TORIKESHI": CORRECTION["SHIMEI_HENKO"],
}

#: Increase ↔ decrease pairs used to hold each roll's population near its starting size.
_COUNTERPART: dict[str, str] = {
    **dict(zip(INCREASE, DECREASE, strict=True)),
    **dict(zip(DECREASE, INCREASE, strict=True)),
}


def expand_reasons(names: Collection[str]) -> tuple[str, ...]:
    """ChangeReason symbols and group names (increase/decrease/correction) → symbols."""
    out: list[str] = []
    for name in names:
        symbols = REASON_GROUPS.get(name.lower(), (name.upper(),))
        for s in symbols:
            if s not in _HANDLERS:
                known = ", ".join((*REASON_GROUPS, *REASONS))
                raise ValueError(f"unknown 異動事由 {name!r}; expected one of {known}")
            if s not in out:
                out.append(s)
    return tuple(out)


class Registry:
    """A synthetic 住民基本台帳 of one or more municipalities (e.g. a 自治体クラウド)."""

    def __init__(
        self,
        seed: int = 0,
        *,
        municipalities: Sequence[str] = DEFAULT_MUNICIPALITIES,
        households: int = 250,
        start: date = date(2025, 4, 1),
        events_per_day: int = 500,
    ) -> None:
        unknown = [m for m in municipalities if m not in MUNICIPALITIES]
        if unknown or not municipalities:
            raise ValueError(f"unknown municipality code(s) {unknown}; known: {', '.join(MUNICIPALITIES)}")
        self.seed = seed
        factory = Factory(Random(seed))
        rolls = {code: Roll(MUNICIPALITIES[code]) for code in dict.fromkeys(municipalities)}
        self._book = Book(factory, rolls, start, max(1, events_per_day))
        for roll in rolls.values():
            for _ in range(households):
                house = factory.household(roll.code, start)
                self._book.register(roll, house)
                self._book.baseline(roll, house)
        self._target = {code: len(roll.residents) for code, roll in rolls.items()}

    @property
    def municipalities(self) -> tuple[str, ...]:
        return tuple(self._book.rolls)

    @property
    def today(self) -> date:
        """The current 処理日 (processing date)."""
        return self._book.today

    def population(self, municipality: str | None = None) -> int:
        """Number of current residents."""
        return sum(len(r.residents) for r in self._rolls(municipality))

    def snapshot(self, municipality: str | None = None) -> Iterator[dict[str, Any]]:
        """The latest record of every current resident (a full extract, e.g. for 住民税).

        Before any event this is everyone's history 1 (their 転入 or 出生, up to 40 years
        ago). Insurance flags are the registry's status *today* (`today`), not on the
        異動日, so a record may differ from the one first sent with the same 履歴番号.
        """
        today = self._book.today
        for roll in self._rolls(municipality):
            for p in list(roll.residents):
                yield to_record(p, flags_on=today)

    def events(
        self,
        n: int,
        municipality: str | None = None,
        reasons: Collection[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Make changes happen and yield `n` jumin.idou records, in processing order.

        `municipality` keeps the changes to one roll. `reasons` (ChangeReason symbols or
        group names) limits which changes are drawn; a change may bring the records it
        causes with it (a householder's 死亡 brings 世帯主変更 for the others, and where
        nobody fits a change, a preparing change runs first), so filter by
        ``record["change"]["reason"]`` when only one kind of record is wanted. Records
        made by an earlier call but not yet handed out (the rest of a household's move)
        come first.
        """
        rolls = self._rolls(municipality)
        chosen = expand_reasons(reasons) if reasons else REASONS
        cum = list(accumulate(WEIGHTS[r] for r in chosen))
        rng, book = self._book.rng, self._book
        produced = 0
        while produced < n:
            for roll in rolls:
                pending = roll.pending
                while pending and produced < n:
                    yield pending.popleft()
                    produced += 1
            if produced >= n:
                return
            roll = rolls[0] if len(rolls) == 1 else self._pick_roll(rolls)
            reason = self._steer(roll, chosen[bisect(cum, rng.random() * cum[-1])], chosen)
            self._happen(book, roll, reason, strict=reasons is not None)

    # --- internals -----------------------------------------------------------------------

    def _rolls(self, municipality: str | None) -> list[Roll]:
        if municipality is None:
            return list(self._book.rolls.values())
        try:
            return [self._book.rolls[municipality]]
        except KeyError:
            raise ValueError(
                f"municipality {municipality!r} is not in this registry ({', '.join(self.municipalities)})"
            ) from None

    def _pick_roll(self, rolls: list[Roll]) -> Roll:
        cum = list(accumulate(len(r.residents) + 1 for r in rolls))
        return rolls[bisect(cum, self._book.rng.random() * cum[-1])]

    def _steer(self, roll: Roll, reason: str, chosen: tuple[str, ...]) -> str:
        """Turn an increase into its decrease (and back) when a roll drifts 15% off its size."""
        other = _COUNTERPART.get(reason)
        if other is None or other not in chosen:
            return reason
        size, target = len(roll.residents), self._target[roll.code]
        if (reason in INCREASE and size > target * 1.15) or (reason in DECREASE and size < target * 0.85):
            return other
        return reason

    def _happen(self, book: Book, roll: Roll, reason: str, strict: bool) -> None:
        book.tick()
        handler = _HANDLERS[reason]
        if handler(book, roll) or not strict:
            return
        prepare = _PREPARE.get(reason)
        for _ in range(20):
            if prepare is not None:
                prepare(book, roll)
            elif not roll.residents:
                tennyu(book, roll, "family")
            if handler(book, roll):
                return
        raise RuntimeError(f"could not make a {reason} change happen in {roll.code}")
