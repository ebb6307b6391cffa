"""The issue's "done when", in a real browser: the demo with its console; a newcomer logs in with
the printed account and sees every destination green; stops a simulated system and sees it go
red with one alert; starts it again, replays its letters from the browser and sees it green
with the alert cleared. Screenshots of each main page go to tests/output/screenshots/."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from console_support import NARROW, WIDE, colours, job_finished, log_in, shoot, until

from bus.cli.demo_console import DEMO_ACCOUNT, DEMO_RETRY, DemoConsole, demo_console_options
from bus.demo import DemoOptions, run_demo

STOPPED = "zei"  # the tax system: every move-in and move-out reaches it


async def test_a_stopped_system_goes_red_with_one_alert_and_green_again_after_a_replay_from_the_browser(
    tmp_path: Path, browser: object
) -> None:
    said: list[str] = []
    serve = DemoConsole(demo_console_options(0), say=said.append)
    demo = asyncio.create_task(run_demo(DemoOptions(changes=60, out=tmp_path, retry=DEMO_RETRY), then=serve))
    try:
        await until(lambda: _ready(serve, demo), "the demo's console starts", within=120)
        assert serve.console is not None
        printed = " ".join(said)
        base = re.search(r"console: (http://\S+?)/ ", printed).group(1)  # type: ignore[union-attr]
        assert f"account: {DEMO_ACCOUNT}" in printed and serve.password in printed
        page = await browser.new_page(viewport=WIDE)  # type: ignore[attr-defined]

        await log_in(page, base, DEMO_ACCOUNT, serve.password)
        await shoot(page, "login-done-overview-ja")
        first = await colours(page, base)
        assert set(first) >= {"zei", "kokuho", "kaigo"} and set(first.values()) == {"green"}, first
        await shoot(page, "overview-all-green-ja")

        await page.click(f"form[action='/demo/{STOPPED}/stop'] button")
        await page.click("form[action='/demo/all/send'] button")
        await until(lambda: _is(page, base, STOPPED, "red"), f"{STOPPED} goes red", within=90)
        others = {n: c for n, c in (await colours(page, base)).items() if n != STOPPED}
        assert set(others.values()) == {"green"}, others
        await shoot(page, "overview-red-ja")
        await until(lambda: _open_alerts(serve, 1), "an alert opens (after its quiet period)", within=30)
        assert [a.key for a in serve.console.alerts.open] == [f"destination:{STOPPED}"]
        await page.goto(f"{base}/alerts")
        assert await page.locator("table.alerts-open tbody tr").count() == 1
        assert await page.get_attribute("table.alerts-open tbody tr", "data-alert") == f"destination:{STOPPED}"
        await shoot(page, "alerts-open-ja")

        await page.goto(f"{base}/")
        await page.click(f"form[action='/demo/{STOPPED}/start'] button")
        await page.goto(f"{base}/dead?destination={STOPPED}")
        letters = await page.locator("table.letters tbody tr").count()
        assert letters >= 1
        await shoot(page, "dead-letters-ja")
        await page.fill("form.bulk input[name=reason]", "税務システム復旧後の再送")
        await page.click("form.bulk button[value=replay]")
        await page.wait_for_url(re.compile(r"/jobs/"))
        await until(lambda: job_finished(page), "the replay finishes", within=60)
        assert await page.locator("progress").get_attribute("value") == str(letters)
        await shoot(page, "replay-done-ja")

        await until(lambda: _is(page, base, STOPPED, "green"), f"{STOPPED} goes green again", within=90)
        assert set((await colours(page, base)).values()) == {"green"}
        await until(lambda: _no_open_alert(serve), "the alert clears", within=30)
        await page.goto(f"{base}/alerts")
        assert await page.locator("table.alerts-open").count() == 0
        assert await page.get_attribute("table.alerts-recent tbody tr", "data-alert") == f"destination:{STOPPED}"
        assert serve.console.alerts.notifications == 2  # one when it started, one when it cleared
        await shoot(page, "alerts-cleared-ja")

        await page.goto(f"{base}/?lang=en")
        assert await page.inner_text("h1") == "Overview"
        assert await page.get_attribute("html", "lang") == "en"
        await shoot(page, "overview-green-en")
        await page.set_viewport_size(NARROW)
        await page.goto(f"{base}/?lang=ja")
        assert await page.inner_text("h1") == "概要"
        await shoot(page, "overview-narrow-ja")
    finally:
        serve.stop.set()
        result = await asyncio.wait_for(demo, timeout=120)
    assert result.ok, [(t.destination, t.missing, t.unexpected) for t in result.destinations]


async def _ready(serve: DemoConsole, demo: asyncio.Task[object]) -> bool:
    if demo.done():
        demo.result()  # raises what ended it
        raise AssertionError("the demo ended before its console started")
    return serve.console is not None and serve.console.server.running


async def _is(page: object, base: str, destination: str, colour: str) -> bool:
    return (await colours(page, base)).get(destination) == colour



async def _no_open_alert(serve: DemoConsole) -> bool:
    return await _open_alerts(serve, 0)


async def _open_alerts(serve: DemoConsole, n: int) -> bool:
    return serve.console is not None and len(serve.console.alerts.open) == n
