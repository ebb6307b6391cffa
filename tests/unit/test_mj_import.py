"""The published MJ縮退マップ and MJ文字情報一覧表 are not shipped (only an excerpt): `renkei schemas
import-mj` imports them into the degradation table, checked, tested here on small files in the
published formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bus.catalog.charsets import CharacterSets
from bus.catalog.mjimport import degradation_rows, read_mji, read_shrink_map
from bus.cli import main
from bus.errors import ConfigError
from bus.paths import schemas_dir

SHRINK = {"content": [
    {"MJ文字図形名": "MJ028902",
     "法務省告示582号別表第四": [{"表": "一", "順位": 1, "UCS": "U+9AD8", "JIS X 0213": "1-25-66"}]},
    {"MJ文字図形名": "MJ013573",  # 𠮷: the stronger of two weak rules wins
     "辞書類等による関連字": [{"UCS": "U+5409", "JIS X 0213": "1-21-40"}],
     "読み・字形による類推": [{"UCS": "U+8A70", "JIS X 0213": "1-21-43"}]},
    {"MJ文字図形名": "MJ011710", "JIS包摂規準・UCS統合規則": [{"UCS": "U+5D0E"}],
     "法務省告示582号別表第四": [{"順位": 2, "UCS": "U+57FC"}]},
    {"MJ文字図形名": "MJ099999", "読み・字形による類推": [{"UCS": "U+4E00"}]},  # not in the 一覧表
    {"MJ文字図形名": "MJ058001", "読み・字形による類推": [{"UCS": "U+2A6B2"}]},  # no candidate in JIS X 0208
]}
MJI = ("図形,font,MJ文字図形名,対応するUCS,実装したUCS,実装したMoji_JohoコレクションIVS,実装したSVS,備考\n"
       ",髙,MJ028902,U+9AD9,U+9AD9,9AD9_E0100,,\n"
       ",𠮷,MJ013573,U+20BB7,U+20BB7,,,\n"
       ",﨑,MJ011710,U+5D0E,U+FA11,,,\n"
       ",高,MJ028901,U+9AD8,U+9AD8,,,\n"
       ",𪚲,MJ058001,U+2A6B2,,,,\n")


@pytest.fixture
def published(tmp_path: Path) -> tuple[Path, Path]:
    shrink, mji = tmp_path / "MJShrinkMap.1.2.0.json", tmp_path / "mji.00601.csv"
    shrink.write_text(json.dumps(SHRINK, ensure_ascii=False), encoding="utf-8")
    mji.write_text(MJI, encoding="utf-8-sig")
    return shrink, mji


def test_the_strongest_rule_that_fits_the_receivers_encoding_gives_the_substitute(published: tuple[Path, Path]) -> None:
    rows, report = degradation_rows(read_shrink_map(published[0]), read_mji(published[1]), "jisx0208")
    assert rows == [("髙", "高", "法務省告示582号別表第四"), ("﨑", "崎", "JIS包摂規準・UCS統合規則"),
                    ("𠮷", "吉", "辞書類等による関連字")]
    assert (report.characters, report.already, report.mapped) == (5, 1, 3)
    assert report.unmappable == ["MJ058001"] and report.unknown == ["MJ099999"]
    cp932, _ = degradation_rows(read_shrink_map(published[0]), read_mji(published[1]), "cp932")
    assert [r[0] for r in cp932] == ["𠮷"]  # CP932 takes 髙 and 﨑 as they are


def test_the_command_writes_the_table_the_character_gate_loads(published: tuple[Path, Path], tmp_path: Path) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(schemas_dir() / "charsets", root / "charsets")
    result = CliRunner().invoke(main, ["schemas", "import-mj", "--shrink-map", str(published[0]),
                                       "--mji", str(published[1]), "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "3 substitutes for 5 MJ characters (1 taken as they are by jisx0208)" in result.output
    assert "MJ058001" in result.output
    table = CharacterSets.load(root).degradation
    assert table["髙"] == ("高", "法務省告示582号別表第四") and table["𠮷"] == ("吉", "辞書類等による関連字")
    text = (root / "charsets" / "mj_shukutai.tsv").read_text(encoding="utf-8")
    assert "CC BY-SA 2.1 JP" in text and "MJShrinkMap.1.2.0.json" in text


@pytest.mark.parametrize(("break_it", "where"), [
    (lambda s, m: (s.replace('"U+9AD8"', '"9AD8"'), m), "content[0] (MJ028902) 法務省告示582号別表第四[0]"),
    (lambda s, m: (s.replace('"MJ013573"', '"MJ13573"'), m), "content[1]"),
    (lambda s, m: (s, m.replace("MJ文字図形名,", "MJ名,")), "mji.00601.csv:1"),
    (lambda s, m: (s, m.replace("U+20BB7,U+20BB7", "U+20BB7,20BB7")), "mji.00601.csv:3"),
    (lambda s, m: ('{"version": "1.2.0"}', m), "MJShrinkMap.1.2.0.json"),
])
def test_a_file_not_in_the_published_format_is_refused_naming_where(
        published: tuple[Path, Path], break_it, where: str) -> None:  # type: ignore[no-untyped-def]
    shrink, mji = published
    s, m = break_it(shrink.read_text(encoding="utf-8"), mji.read_text(encoding="utf-8-sig"))
    shrink.write_text(s, encoding="utf-8")
    mji.write_text(m, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        degradation_rows(read_shrink_map(shrink), read_mji(mji))
    assert where in str(caught.value)


def test_the_shipped_table_is_still_an_excerpt_and_says_so() -> None:
    text = (schemas_dir() / "charsets" / "mj_shukutai.tsv").read_text(encoding="utf-8")
    assert "excerpt" in text and "renkei schemas import-mj" in text
