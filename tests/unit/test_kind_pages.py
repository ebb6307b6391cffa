"""docs/kinds/: one page per kind for vendors, generated from the catalog and the routes."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bus.catalog import Catalog
from bus.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs" / "kinds"


def test_the_committed_pages_are_what_renkei_conformance_docs_writes(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["conformance", "docs", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    made = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir()}
    committed = {p.name: p.read_text(encoding="utf-8") for p in DOCS.iterdir()}
    assert made == committed, "run `renkei conformance docs` and commit docs/kinds/"
    assert set(made) == {f"{k}.md" for k in Catalog.load().kinds()} | {"README.md"}


def test_the_source_kind_page_says_which_destination_gets_which_field() -> None:
    page = (DOCS / "jumin.idou.md").read_text(encoding="utf-8")
    header = next(line for line in page.splitlines() if line.startswith("| field | fukushi"))
    destinations = [c.strip() for c in header.split("|")[2:-1]]
    assert destinations == sorted(destinations) and {"zei", "kokuho", "togo", "portal"} <= set(destinations)
    row = next(line for line in page.splitlines() if line.startswith("| `personal_number` |"))
    cells = dict(zip(destinations, [c.strip() for c in row.split("|")[2:-1]], strict=True))
    assert cells["togo"] == ""  # the 統合宛名 function, the only path to the intermediate server: no 個人番号
    assert cells["zei"] == "✓"


def test_every_page_has_samples_in_xml_json_and_csv_where_the_kind_has_a_layout() -> None:
    for page in DOCS.glob("*.*.md"):
        text = page.read_text(encoding="utf-8")
        assert "```xml" in text and "```json" in text, page.name
        assert ("```csv" in text) != ("has no CSV layout" in text), page.name
