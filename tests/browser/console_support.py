"""What the browser tests share: logging in, reading the overview, screenshots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "screenshots"
NARROW = {"width": 390, "height": 844}  # a phone
WIDE = {"width": 1280, "height": 900}


async def shoot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def log_in(page: Any, base: str, name: str, password: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", password)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url(f"{base}/")


async def colours(page: Any, base: str) -> dict[str, str]:
    """destination → its badge's colour on a fresh overview."""
    await page.goto(f"{base}/")
    rows = await page.query_selector_all("table.destinations tbody tr")
    found = {}
    for row in rows:
        name = await row.get_attribute("data-destination")
        badge = await row.query_selector(".badge")
        found[str(name)] = str(await badge.get_attribute("data-colour")) if badge else ""
    return found


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 60.0, every: float = 0.5) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(every)
    raise AssertionError(f"not within {within:.0f} s: {what}")


async def job_finished(page: Any) -> bool:
    """Whether the job page shows its job finished. The page refreshes itself (a meta refresh)
    while the job runs, so a reload of ours can collide with its own navigation: that answers
    "not yet", and the caller asks again."""
    from playwright.async_api import Error as PlaywrightError

    try:
        await page.reload()
        return bool(await page.get_attribute("#job-state", "data-finished") == "yes")
    except PlaywrightError:
        return False
