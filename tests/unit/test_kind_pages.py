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
    from bus.catalog.spec import iter_leaves
    from bus.routing.router import RouteTable

    catalog = Catalog.load()
    taking = [r for r in RouteTable.load(None, catalog).routes if r.takes == "jumin.idou"]
    page = (DOCS / "jumin.idou.md").read_text(encoding="utf-8")
    header = next(line for line in page.splitlines() if line.startswith("| field | ") and "項目" not in line)
    destinations = [c.strip() for c in header.split("|")[2:-1]]
    assert destinations == sorted({r.destination for r in taking})
    row = next(line for line in page.splitlines() if line.startswith("| `personal_number` |"))
    cells = dict(zip(destinations, [c.strip() for c in row.split("|")[2:-1]], strict=True))
    for route in taking:  # ✓ exactly where the target kind has the field (the projection copies by name)
        target = {p for p, _ in iter_leaves(catalog.get(route.projection.kind).fields)}
        assert (cells[route.destination] == "✓") == ("personal_number" in target), route.name
    assert taking
    assert cells["togo"] == ""  # the 統合宛名 function, the only path to the intermediate server: no 個人番号
    assert cells["zei"] == "✓"


def test_every_page_has_samples_in_xml_json_and_csv_where_the_kind_has_a_layout() -> None:
    for page in DOCS.glob("*.*.md"):
        text = page.read_text(encoding="utf-8")
        assert "```xml" in text and "```json" in text, page.name
        assert ("```csv" in text) != ("has no CSV layout" in text), page.name
