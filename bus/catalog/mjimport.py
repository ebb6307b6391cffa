"""Import the published MJ縮退マップ into the degradation table (schemas/charsets/mj_shukutai.tsv).

    renkei schemas import-mj --shrink-map MJShrinkMap.1.2.0.json --mji mji.00601.csv \\
        [--encoding jisx0208|cp932] [--out schemas/charsets/mj_shukutai.tsv]

The two published files (文字情報技術促進協議会, https://moji.or.jp/mojikiban/ — MJ文字情報一覧表
and MJ縮退マップ, CC BY-SA 2.1 JP, © IPA; not shipped here):

- **MJ縮退マップ** (JSON): ``{"content": [{"MJ文字図形名": "MJ000001", "<rule>": [{"UCS":
  "U+XXXX", "JIS X 0213": "1-1-24", "種別"?, "表"?, "順位"?, "付記"?, "ホップ数"?}], "参考情報"?}]}``
  with the rules JIS包摂規準・UCS統合規則, 法務省戸籍法関連通達・通知, 法務省告示582号別表第四,
  辞書類等による関連字, 読み・字形による類推 (in that order of strength);
- **MJ文字情報一覧表**, saved as CSV (UTF-8) from the published spreadsheet: its columns
  ``MJ文字図形名`` and ``実装したUCS`` (the code point the data carries; ``対応するUCS`` when empty).

For each MJ character the receiver's encoding cannot take (JIS X 0208: ISO-2022-JP; or CP932),
the first candidate of the strongest rule (then by 順位) that it can take becomes the row
``character, substitute, rule``; a character with none gets no row (the degradation step reports
it unmappable). Every problem is a ConfigError naming the file and the record or line.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.errors import ConfigError

__all__ = ["RULES", "ImportReport", "degradation_rows", "encodable", "import_mj", "read_mji", "read_shrink_map"]

#: the rules of the map, strongest first; the map spells the first 規準 (some tools 基準)
RULES = ("JIS包摂規準・UCS統合規則", "法務省戸籍法関連通達・通知", "法務省告示582号別表第四", "辞書類等による関連字",
         "読み・字形による類推")
_ALIASES = {"JIS包摂基準・UCS統合規則": RULES[0]}
_MJ = re.compile(r"MJ[0-9]{6}")
_UCS = re.compile(r"U\+([0-9A-F]{4,6})")
_CODECS = {"jisx0208": "iso2022_jp", "cp932": "cp932"}


@dataclass(frozen=True, slots=True)
class Candidate:
    rule: str
    character: str
    rank: int  # 順位 (1 first) where the map gives one, else 1


@dataclass(slots=True)
class ImportReport:
    characters: int = 0  # MJ characters in the 一覧表
    already: int = 0  # the encoding takes them as they are
    mapped: int = 0
    unmappable: list[str] = field(default_factory=list)  # MJ文字図形名 with no candidate the encoding takes
    unknown: list[str] = field(default_factory=list)  # map entries not in the 一覧表


def _character(ucs: Any, where: str) -> str:
    match = _UCS.fullmatch(str(ucs or "").strip().upper())
    if match is None:
        raise ConfigError(f"UCS must be written U+XXXX, got {str(ucs)[:20]!r}", where=where)
    return chr(int(match.group(1), 16))


def read_shrink_map(path: Path) -> dict[str, list[Candidate]]:
    """MJ文字図形名 → its candidates, strongest rule first."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"not the MJ縮退マップ JSON: {type(exc).__name__}", where=str(path)) from None
    content = doc.get("content") if isinstance(doc, Mapping) else None
    if not isinstance(content, list):
        raise ConfigError('not the MJ縮退マップ JSON: no "content" list', where=str(path))
    out: dict[str, list[Candidate]] = {}
    for n, record in enumerate(content):
        where = f"{path}: content[{n}]"
        name = record.get("MJ文字図形名") if isinstance(record, Mapping) else None
        if not isinstance(name, str) or not _MJ.fullmatch(name):
            raise ConfigError("MJ文字図形名 must be MJ and six digits", where=where)
        found: list[Candidate] = []
        for key, mappings in record.items():
            rule = _ALIASES.get(key, key)
            if rule not in RULES:
                continue
            if not isinstance(mappings, list):
                raise ConfigError(f"{key} must be a list of mappings", where=f"{where} ({name})")
            for m, mapping in enumerate(mappings):
                at = f"{where} ({name}) {key}[{m}]"
                if not isinstance(mapping, Mapping):
                    raise ConfigError("a mapping must be an object with UCS", where=at)
                rank = str(mapping.get("順位") or "")
                found.append(Candidate(rule, _character(mapping.get("UCS"), at), int(rank) if rank.isdigit() else 1))
        out[name] = sorted(found, key=lambda c: (RULES.index(c.rule), c.rank))
    return out


def read_mji(path: Path) -> dict[str, str]:
    """MJ文字図形名 → the character (one code point) of the MJ文字情報一覧表 saved as CSV."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the MJ文字情報一覧表 must be CSV in UTF-8 ({type(exc).__name__})",
                          where=str(path)) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"MJ文字図形名", "実装したUCS"} - set(reader.fieldnames or ())
    if missing:
        raise ConfigError(f"the header lacks {', '.join(sorted(missing))} (save the published table as CSV)",
                          where=f"{path}:1")
    out: dict[str, str] = {}
    for row in reader:
        where = f"{path}:{reader.line_num}"
        name = (row.get("MJ文字図形名") or "").strip()
        if not _MJ.fullmatch(name):
            raise ConfigError("MJ文字図形名 must be MJ and six digits", where=where)
        ucs = (row.get("実装したUCS") or "").strip() or (row.get("対応するUCS") or "").strip()
        if ucs:  # an MJ character without a code point of its own is reached by IVS only
            out[name] = _character(ucs, where)
    return out


def encodable(character: str, encoding: str) -> bool:
    try:
        character.encode(_CODECS[encoding])
    except UnicodeEncodeError:
        return False
    return True


def degradation_rows(shrink: Mapping[str, list[Candidate]], mji: Mapping[str, str],
                     encoding: str = "jisx0208") -> tuple[list[tuple[str, str, str]], ImportReport]:
    """The rows (character, substitute, rule) for a receiver of `encoding`, and what was found."""
    if encoding not in _CODECS:
        raise ConfigError(f"encoding must be one of {', '.join(_CODECS)}, got {encoding!r}")
    report = ImportReport(characters=len(mji), unknown=sorted(set(shrink) - set(mji)))
    rows: dict[str, tuple[str, str]] = {}
    for name, character in sorted(mji.items()):
        if encodable(character, encoding):
            report.already += 1
            continue
        usable = [c for c in shrink.get(name, ()) if c.character != character and encodable(c.character, encoding)]
        if not usable:
            report.unmappable.append(name)
            continue
        rows.setdefault(character, (usable[0].character, usable[0].rule))  # one row per code point
    report.mapped = len(rows)
    return [(ch, to, rule) for ch, (to, rule) in sorted(rows.items())], report


def import_mj(shrink_map: Path, mji: Path, out: Path, encoding: str = "jisx0208") -> ImportReport:
    """Read both published files, write the degradation table to `out` (with its source)."""
    rows, report = degradation_rows(read_shrink_map(shrink_map), read_mji(mji), encoding)
    header = [
        f"# MJ縮退マップ for receivers of {encoding}: character → substitute, rule (the strongest that fits).",
        f"# Imported by `renkei schemas import-mj` from {shrink_map.name} and {mji.name}:",
        "# 文字情報技術促進協議会 (https://moji.or.jp/mojikiban/), MJ文字情報一覧表 and MJ縮退マップ,",
        "# CC BY-SA 2.1 JP, © 独立行政法人情報処理推進機構 (IPA). This file is a derived work under the same licence.",
        f"# {report.mapped} rows; {len(report.unmappable)} MJ characters without a substitute (reported unmappable).",
    ]
    out.write_text("\n".join([*header, *("\t".join(r) for r in rows)]) + "\n", encoding="utf-8")
    return report


def names(items: Iterable[str], limit: int = 5) -> str:
    listed = list(items)
    return ", ".join(listed[:limit]) + (f" … ({len(listed)})" if len(listed) > limit else "")
