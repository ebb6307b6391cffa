"""Registered character sets and the degradation map (schemas/charsets/, DESIGN §2).

Names use 行政事務標準文字. Most of it is in Unicode (with IVS for variants); its additions not
yet encoded (MJ+) are carried in a private-use range. The catalog declares such a range as a
*registered character set* with a mapping file listing each accepted code point; the
character gate accepts exactly those and refuses every other private-use character (vendor
外字, R440). The degradation map (an excerpt of the MJ縮退マップ) serves receivers that declare
CP932 or JIS X 0208 only (bus.validation.degrade).

    sets = CharacterSets.load()          # schemas_dir()/charsets/charsets.yaml
    sets.registered_name(0xF0000)        # 'MJPLUS' or None
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bus.errors import ConfigError
from bus.paths import schemas_dir

__all__ = ["CharacterSets", "MappedCharacter", "RegisteredSet", "charsets_for", "default_charsets"]


@dataclass(frozen=True, slots=True)
class MappedCharacter:
    """One accepted code point of a registered set: its id, JIS X 0208 substitute, reading."""

    codepoint: int
    identifier: str
    degraded: str | None
    reading: str | None


@dataclass(frozen=True, slots=True)
class RegisteredSet:
    name: str
    label_ja: str
    source: str
    ranges: tuple[tuple[int, int], ...]
    characters: Mapping[int, MappedCharacter]

    def in_range(self, codepoint: int) -> bool:
        return any(low <= codepoint <= high for low, high in self.ranges)


@dataclass(frozen=True, slots=True)
class CharacterSets:
    registered: tuple[RegisteredSet, ...] = ()
    degradation: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # char → (to, rule)
    degradation_source: str = ""

    @classmethod
    def load(cls, root: Path | None = None) -> CharacterSets:
        """Read ``<root>/charsets/charsets.yaml`` (root: the schema catalog). A catalog without
        it registers nothing: every private-use character is refused, nothing is degraded."""
        folder = (Path(root) if root is not None else schemas_dir()) / "charsets"
        path = folder / "charsets.yaml"
        if not path.is_file():
            return cls()
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"charsets.yaml does not parse: {exc}", where=str(path)) from None
        sets = tuple(_registered(folder, entry, path) for entry in doc.get("registered") or ())
        degradation = doc.get("degradation") or {}
        table: dict[str, tuple[str, str]] = {}
        if degradation.get("map"):
            for where, cols in _rows(folder / str(degradation["map"])):
                if len(cols) < 2 or len(cols[0]) != 1 or not cols[1]:
                    raise ConfigError("a degradation row is: one character, its substitute, the rule",
                                      where=where)
                table[cols[0]] = (cols[1], cols[2] if len(cols) > 2 else "")
        return cls(sets, table, " ".join(str(degradation.get("source", "")).split()))

    def registered_name(self, codepoint: int) -> str | None:
        """The registered set that accepts this private-use code point, or None."""
        for s in self.registered:
            if codepoint in s.characters and s.in_range(codepoint):
                return s.name
        return None

    def mapped(self, codepoint: int) -> MappedCharacter | None:
        for s in self.registered:
            found = s.characters.get(codepoint)
            if found is not None:
                return found
        return None


def _rows(path: Path) -> list[tuple[str, list[str]]]:
    if not path.is_file():
        raise ConfigError("mapping file named in charsets.yaml is missing", where=str(path))
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            out.append((f"{path}:{n}", [c.strip() for c in line.split("\t")]))
    return out


def _codepoint(text: str, where: str) -> int:
    try:
        return int(text.upper().removeprefix("U+"), 16)
    except ValueError:
        raise ConfigError(f"not a code point: {text!r} (write U+F0000)", where=where) from None


def _registered(folder: Path, entry: Mapping[str, Any], path: Path) -> RegisteredSet:
    name = str(entry.get("name", ""))
    ranges: list[tuple[int, int]] = []
    for text in entry.get("ranges") or ():
        first, _, last = str(text).partition("-")
        ranges.append((_codepoint(first, str(path)), _codepoint(last or first, str(path))))
    for low, high in ranges:
        if not (0xE000 <= low <= high <= 0xF8FF or 0xF0000 <= low <= high <= 0x10FFFD):
            raise ConfigError(f"set {name}: range U+{low:04X}-U+{high:04X} is not private use", where=str(path))
    chars: dict[int, MappedCharacter] = {}
    for where, cols in _rows(folder / str(entry.get("mapping", ""))):
        cp = _codepoint(cols[0], where)
        if not any(low <= cp <= high for low, high in ranges):
            raise ConfigError(f"set {name}: U+{cp:04X} lies outside the set's declared ranges", where=where)
        extra = [None if not c or c == "-" else c for c in [*cols, "", "", ""][1:4]]
        chars[cp] = MappedCharacter(cp, extra[0] or "", extra[1], extra[2])
    return RegisteredSet(name, str(entry.get("label_ja", name)), " ".join(str(entry.get("source", "")).split()),
                         tuple(ranges), chars)


@functools.lru_cache(maxsize=4)
def _load_cached(root: str) -> CharacterSets:
    return CharacterSets.load(Path(root))


def charsets_for(root: Path) -> CharacterSets:
    """The character sets of the catalog at `root`, read once."""
    return _load_cached(str(root))


def default_charsets() -> CharacterSets:
    """The character sets of the shipped (or RENKEI_SCHEMAS_DIR) catalog, read once."""
    return charsets_for(schemas_dir())
