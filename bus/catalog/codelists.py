"""Code lists (コード一覧): `schemas/codelists.yaml`, defined once for every kind.

    >>> cl = CodeLists.load()
    >>> cl.symbols("Sex")
    ('MALE', 'FEMALE')
    >>> cl.group("TENSHUTSU"), cl.label("ChangeReason", "TENSHUTSU"), cl.numeric("ChangeReason", "TENSHUTSU")
    ('decrease', '転出', '21')

An unknown list name raises `ConfigError` (a caller or catalog bug); an unknown symbol
raises `KeyError` (a value from a message: check it with `symbols()` first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from bus.errors import ConfigError
from bus.paths import schemas_dir

__all__ = ["Code", "CodeList", "CodeLists", "Group", "load_yaml"]

Group = Literal["increase", "decrease", "correction"]
_GROUPS: tuple[Group, ...] = ("increase", "decrease", "correction")
_SYMBOL = re.compile(r"[A-Z][A-Z0-9_]*")
_NUMERIC = re.compile(r"[0-9]{2}")


@dataclass(frozen=True, slots=True)
class Code:
    symbol: str  # the value on the wire
    code: str  # 2-digit numeric code for fixed-width files
    label_ja: str
    description: str
    group: Group | None = None  # ChangeReason only


@dataclass(frozen=True, slots=True)
class CodeList:
    name: str
    label_ja: str
    description: str
    codes: tuple[Code, ...]

    def get(self, symbol: str) -> Code:
        for code in self.codes:
            if code.symbol == symbol:
                return code
        raise KeyError(f"{symbol!r} is not a {self.name} symbol; expected one of {', '.join(self.symbols)}")

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(c.symbol for c in self.codes)


class CodeLists:
    """All code lists, by name (ChangeReason, Relationship, Sex, ResidentType, ...)."""

    def __init__(self, lists: dict[str, CodeList], source: Path | None = None) -> None:
        self._lists = lists
        self.source = source
        # every ChangeReason list (v1's and v2's ChangeReason2) gives its symbols a group; a
        # symbol in several lists has one group (checked by _parse_lists)
        self._groups = {c.symbol: c.group for name, cl in lists.items() if _has_groups(name)
                        for c in cl.codes}

    @classmethod
    def load(cls, path: Path | None = None) -> CodeLists:
        """Read `codelists.yaml` (default: the catalog's, see bus.paths.schemas_dir())."""
        path = path or schemas_dir() / "codelists.yaml"
        try:
            raw = load_yaml(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the code lists: {exc}", where=str(path)) from exc
        if not isinstance(raw, dict):
            raise ConfigError("expected a mapping of code list names", where=str(path))
        lists = {name: _parse_list(name, body, path) for name, body in raw.items()}
        seen: dict[str, Group | None] = {}
        for name, cl in lists.items():
            for c in cl.codes if _has_groups(name) else ():
                if seen.setdefault(c.symbol, c.group) != c.group:
                    raise ConfigError(f"{c.symbol}: group differs between change-reason lists", where=f"{path}: {name}")
        return cls(lists, source=path)

    def names(self) -> list[str]:
        return list(self._lists)

    def get(self, name: str) -> CodeList:
        try:
            return self._lists[name]
        except KeyError:
            raise ConfigError(
                f"unknown code list {name!r}; known: {', '.join(self._lists)}", where=str(self.source or "")
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._lists

    def symbols(self, name: str) -> tuple[str, ...]:
        return self.get(name).symbols

    def group(self, symbol: str) -> Group:
        """The group (increase/decrease/correction) of a ChangeReason symbol."""
        group = self._groups.get(symbol)
        if group is None:
            raise KeyError(f"{symbol!r} is not a ChangeReason symbol")
        return group

    def label(self, name: str, symbol: str) -> str:
        return self.get(name).get(symbol).label_ja

    def numeric(self, name: str, symbol: str) -> str:
        return self.get(name).get(symbol).code

    def from_numeric(self, name: str, code: str) -> str:
        """The symbol of a 2-digit numeric code (fixed-width files)."""
        for c in self.get(name).codes:
            if c.code == code:
                return c.symbol
        raise KeyError(f"{code!r} is not a {name} numeric code")


def _has_groups(name: str) -> bool:
    """Change-reason lists (ChangeReason, ChangeReason2, ...) give each code a group."""
    return name.startswith("ChangeReason")


def load_yaml(text: str) -> Any:
    """Safe YAML (plain data only), with libyaml's parser when installed (~10x faster)."""
    if yaml.__with_libyaml__:
        return yaml.load(text, Loader=yaml.CSafeLoader)
    return yaml.safe_load(text)


def _parse_list(name: str, body: Any, path: Path) -> CodeList:
    where = f"{path}: {name}"
    if not isinstance(body, dict) or not isinstance(body.get("codes"), list):
        raise ConfigError("a code list needs label_ja, description and a list of codes", where=where)
    codes: list[Code] = []
    for entry in body["codes"]:
        if not isinstance(entry, dict):
            raise ConfigError(f"each code must be a mapping, got {entry!r}", where=where)
        symbol, code = str(entry.get("symbol", "")), str(entry.get("code", ""))
        if not _SYMBOL.fullmatch(symbol):
            raise ConfigError(f"symbol {symbol!r} must be upper-case letters, digits and _", where=where)
        if not _NUMERIC.fullmatch(code):
            raise ConfigError(f"{symbol}: code {code!r} must be 2 digits (quote it in YAML)", where=where)
        group = entry.get("group")
        if _has_groups(name) and group not in _GROUPS:
            raise ConfigError(f"{symbol}: group must be one of {', '.join(_GROUPS)}", where=where)
        codes.append(
            Code(symbol, code, str(entry.get("label_ja", "")), str(entry.get("description", "")),
                 cast(Group | None, group))
        )
    for attr in ("symbol", "code"):
        values = [getattr(c, attr) for c in codes]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ConfigError(f"duplicate {attr}s: {', '.join(dupes)}", where=where)
    return CodeList(name, str(body.get("label_ja", "")), str(body.get("description", "")), tuple(codes))
