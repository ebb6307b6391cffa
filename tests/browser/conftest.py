"""Browser tests: Playwright for Python driving Debian's chromium (scripts/chromium.sh installs it;
nothing is downloaded from elsewhere, never `playwright install`). Screenshots of the main pages
go to tests/output/screenshots/ for review."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

CHROMIUM = os.environ.get("RENKEI_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (once, before the browser starts)
        why = f"no chromium at {CHROMIUM}: run `bash scripts/chromium.sh` (as root) or `bash scripts/test.sh`"
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI is set, so this is an error, not a skip)", pytrace=False)
        pytest.skip(why)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()
