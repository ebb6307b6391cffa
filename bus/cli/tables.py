"""Plain-text tables for the commands operators read (status, dead list)."""

from __future__ import annotations

import unicodedata

__all__ = ["cell", "columns"]


def columns(header: list[str], rows: list[list[object]], empty: str | None = None, text: int = 1) -> list[str]:
    """The first `text` columns left-aligned, the figures right-aligned; None shows as '-'.
    Widths count East Asian wide characters (漢字, かな) as two columns, as a terminal does."""
    cells = [header] + [[cell(v) for v in row] for row in rows]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(header))]
    out = []
    for row in cells:
        padded = []
        for i, (value, width) in enumerate(zip(row, widths, strict=True)):
            pad = " " * (width - _width(value))
            padded.append(value + pad if i < text else pad + value)
        out.append("  ".join(padded).rstrip())
    if not rows and empty:
        out.append(empty)
    return out


def cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
