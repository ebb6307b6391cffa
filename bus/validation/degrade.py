"""Character degradation (文字の縮退) for receivers that declare CP932 or JIS X 0208 only.

The bus carries names as the registry writes them (compatibility ideographs, IVS, registered
MJ+ code points). A receiver that can take only CP932 (Windows-31J) or JIS X 0208 gets each
character it cannot take replaced by a substitute, in this order:

1. an ideographic variation selector (U+FE00–FE0F, U+E0100–E01EF) is dropped: the base
   character stays (the variant is lost, and reported);
2. the degradation map (schemas/charsets/mj_shukutai.tsv, an excerpt of the MJ縮退マップ):
   髙 → 高, 﨑 → 崎, 𠮷 → 吉 …;
3. a compatibility ideograph becomes its canonical decomposition (塚 U+FA10 → 塚 U+585A);
4. a registered MJ+ code point becomes the substitute its mapping file names.

Every replacement is reported (field path, position, code points, rule); a character with no
substitute the receiver can take is reported as *unmappable* and the caller refuses the
message. Nothing is ever replaced by 〓 (GETA) silently. The report carries code points, never
the text around them (names are personal).

    result = degrade_record(record, "jisx0208")
    result.record, result.steps, result.unmappable
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bus.catalog.charsets import CharacterSets, default_charsets

__all__ = ["Degradation", "Step", "Target", "can_encode", "degrade_record", "degrade_text"]

Target = Literal["cp932", "jisx0208"]
# Python's iso2022_jp is ASCII + JIS X 0201 Roman + JIS X 0208: exactly a JIS X 0208 receiver.
_CODECS: Mapping[str, str] = {"cp932": "cp932", "jisx0208": "iso2022_jp"}


@dataclass(frozen=True, slots=True)
class Step:
    """One reported replacement (or, with `to` None, one character left unmappable)."""

    path: str
    position: int
    original: str  # "U+FA10" (or "U+8FBB U+E0100" for an IVS sequence)
    to: str | None  # "U+585A", or None when nothing the receiver can take was found
    rule: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "position": self.position, "from": self.original, "to": self.to,
                "rule": self.rule}


@dataclass(slots=True)
class Degradation:
    record: Any
    steps: list[Step] = field(default_factory=list)
    unmappable: list[Step] = field(default_factory=list)


def can_encode(ch: str, target: Target) -> bool:
    """True when `target` holds every character of `ch`; never for a private-use one (CP932
    would map it into its user area, whose meaning differs between systems)."""
    if any(0xE000 <= ord(c) <= 0xF8FF or ord(c) >= 0xF0000 for c in ch):
        return False
    try:
        ch.encode(_CODECS[target])
    except UnicodeEncodeError:
        return False
    return True


def _is_selector(ch: str) -> bool:
    cp = ord(ch)
    return 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF


def _u(text: str) -> str:
    return " ".join(f"U+{ord(c):04X}" for c in text)


def _substitute(ch: str, sets: CharacterSets) -> tuple[str, str] | None:
    mapped = sets.degradation.get(ch)
    if mapped is not None:
        return mapped[0], f"MJ縮退マップ ({mapped[1]})" if mapped[1] else "MJ縮退マップ"
    cp = ord(ch)
    if 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F:
        unified = unicodedata.normalize("NFC", ch)
        if unified != ch:
            return unified, "互換漢字 → 統合漢字 (Unicode canonical decomposition)"
    registered = sets.mapped(cp)
    if registered is not None and registered.degraded:
        return registered.degraded, f"MJ+ {registered.identifier} → mapping file substitute"
    return None


def degrade_text(text: str, target: Target, path: str = "",
                 charsets: CharacterSets | None = None) -> tuple[str, list[Step], list[Step]]:
    """`text` as `target` can take it, the replacements made, and the characters left unmappable."""
    if can_encode(text, target):
        return text, [], []
    sets = charsets if charsets is not None else default_charsets()
    out: list[str] = []
    steps: list[Step] = []
    unmappable: list[Step] = []
    i = 0
    while i < len(text):
        ch = text[i]
        selector = text[i + 1] if i + 1 < len(text) and _is_selector(text[i + 1]) else ""
        if not selector and can_encode(ch, target):
            out.append(ch)
            i += 1
            continue
        original = ch + selector
        replaced, rules = ch, ["IVS → base character"] if selector else []
        if not can_encode(replaced, target):
            found = _substitute(replaced, sets)
            if found is not None:
                replaced = found[0]
                rules.append(found[1])
        if can_encode(replaced, target):
            out.append(replaced)
            steps.append(Step(path, i, _u(original), _u(replaced), "; ".join(rules)))
        else:
            out.append(original)
            unmappable.append(Step(path, i, _u(original), None, f"no substitute {target} can take"))
        i += len(original)
    return "".join(out), steps, unmappable


def degrade_record(record: Any, target: Target, charsets: CharacterSets | None = None,
                   path: str = "") -> Degradation:
    """A copy of `record` (mappings, lists, strings) with every string degraded for `target`."""
    result = Degradation(None)
    result.record = _walk(record, path, target, charsets, result)
    return result


def _walk(value: Any, path: str, target: Target, charsets: CharacterSets | None, result: Degradation) -> Any:
    if isinstance(value, str):
        text, steps, unmappable = degrade_text(value, target, path, charsets)
        result.steps.extend(steps)
        result.unmappable.extend(unmappable)
        return text
    if isinstance(value, Mapping):
        return {k: _walk(v, f"{path}/{k}", target, charsets, result) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v, f"{path}[{n}]", target, charsets, result) for n, v in enumerate(value)]
    return value
