"""The console in a shared data centre, in a real browser: a bus of two municipalities (千代田区
131016 = A, 大阪市 271004 = B) whose tax systems each refused one change. An operator of A sees
A's destination, letters and trail and nothing of B's; finds a message by its id and a
resident by 宛名番号 (never echoed); unmasks a letter (audited) and replays it with a reason
(audited with its name). A viewer of B sees B's letter but cannot replay it. Japanese and
English pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from console_support import WIDE, job_finished, log_in, shoot, until

from adapters.server import EmbeddedServer
from bus.app import Bus
from bus.audit.log import AuditLog
from bus.catalog import Catalog
from bus.console import Accounts, Console, console_options
from bus.errors import PermanentError
from bus.masking import Pseudonymizer
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import Settings
from bus.synthetic.samples import sample_records

A, B = "131016", "271004"
KEY = "renkei-console-test-key-0123456789"
PASSWORD = "correct horse battery"


@dataclass
class Tenants:
    base: str
    console: Console
    bus: Bus
    records: dict[str, list[dict[str, Any]]]  # municipality → records sent
    refused: dict[str, str]  # municipality → message id its tax system refused once


@pytest.fixture
async def tenants(tmp_path: Path) -> AsyncIterator[Tenants]:
    config = tmp_path / "renkei.toml"
    lines = ["[bus]", 'state_dir = "var"', f'municipalities = ["{A}", "{B}"]', "", "[logging]", 'level = "warning"',
             "", "[console]", "port = 0", "quiet_period = 0", "sample_every = 0.5", ""]
    for code in (A, B):
        lines += [f"[destinations.zei-{code}]", 'transport = "file"', f'directory = "out/{code}"', 'system = "zei"',
                  f'municipality = "{code}"', ""]
    config.write_text("\n".join(lines), encoding="utf-8")
    settings = Settings.load(config, env={"RENKEI_PSEUDONYM_KEY": KEY})
    catalog = Catalog.load()
    records = {m: list(sample_records("jumin.idou", catalog, seed=7, n=3, municipality=m)) for m in (A, B)}
    ids = Pseudonymizer(KEY.encode())
    refused = {m: ids.message_id(m, r[0]["address_number"], int(r[0]["history_number"])) for m, r in records.items()}
    seen: set[str] = set()

    def tax_system(message: Outbound) -> Receipt:
        message_id = message.envelope.message_id
        if message_id in refused.values() and message_id not in seen:
            seen.add(message_id)
            raise PermanentError("the tax system refused the change (test)")
        return Receipt.applied(message)

    bus = Bus(settings, sinks={f"zei-{m}": FunctionSink(tax_system) for m in (A, B)}, catalog=catalog)
    await bus.start()
    accounts = Accounts(console_options(settings, env={}).users_file)  # type: ignore[arg-type]
    accounts.add("op-a", PASSWORD, role="operator", municipalities=[A])
    accounts.add("viewer-b", PASSWORD, role="viewer", municipalities=[B])
    console = Console(settings, console_options(settings, env={}), serve=EmbeddedServer, broker=bus.broker,
                      destinations=lambda: bus.destinations)
    try:
        for m in (A, B):
            for record in records[m]:
                answer = await bus.intake.submit(catalog.get("jumin.idou").to_xml(record),
                                                 content_type="application/xml", source="jumin")
                assert answer.status == "accepted"
        assert await bus.wait_idle(within=60)
        await console.start()
        yield Tenants(console.url, console, bus, records, refused)
    finally:
        await console.stop()
        await bus.stop()


async def test_an_operator_of_one_municipality_sees_nothing_of_another(tenants: Tenants, browser: Any) -> None:
    page = await browser.new_page(viewport=WIDE)
    base = tenants.base
    await page.goto(f"{base}/login")
    assert await page.inner_text("h1") == "ログイン"
    await shoot(page, "login-ja")
    await log_in(page, base, "op-a", PASSWORD)
    rows = await page.query_selector_all("table.destinations tbody tr")
    names = [await r.get_attribute("data-destination") for r in rows]
    assert names == [f"zei-{A}"]
    assert "zei-271004" not in await page.content()
    await shoot(page, "overview-operator-of-a-ja")

    await page.goto(f"{base}/dead")
    cells = await page.locator("table.letters tbody tr td:nth-child(4)").all_inner_texts()
    assert cells == [A]
    await page.goto(f"{base}/dead?municipality={B}")
    assert await page.locator("table.letters").count() == 0
    b_letter = tenants.console.data.dead_letters(None, municipality=B)[0]
    response = await page.goto(f"{base}/dead/{b_letter.id}")
    assert response.status == 404

    await page.goto(f"{base}/search?message_id={tenants.refused[B]}")
    assert await page.locator("table.life").count() == 0
    assert await page.locator("p.none").count() == 1
    await page.goto(f"{base}/search?message_id={tenants.refused[A]}")
    events = await page.locator("table.life tbody tr").evaluate_all("rows => rows.map(r => r.dataset.event)")
    assert events[:2] == ["received", "accepted"] and "dead_lettered" in events
    await shoot(page, "search-message-life-ja")

    delivered = tenants.records[A][1]["address_number"]
    await page.fill("input[name=address_number]", delivered)
    await page.click("form[method=post][action='/search'] button")
    assert await page.locator("table.trail tbody tr").count() >= 1
    assert delivered not in await page.content()  # the 宛名番号 is never shown back
    assert delivered not in page.url
    await shoot(page, "search-resident-trail-ja")
    await page.goto(f"{base}/search")
    await page.fill("input[name=address_number]", tenants.records[B][1]["address_number"])
    await page.click("form[method=post][action='/search'] button")
    assert await page.locator("table.trail").count() == 0

    a_letter = tenants.console.data.dead_letters(None, municipality=A)[0]
    await page.goto(f"{base}/dead/{a_letter.id}")
    masked = await page.inner_text("pre.record")
    personal = tenants.records[A][0]["address_number"]
    assert personal not in masked and "*" in masked
    await page.click(f"form[action='/dead/{a_letter.id}'] button")
    assert personal in await page.inner_text("pre.record")
    await shoot(page, "dead-letter-unmasked-ja")
    await page.fill("form.bulk input[name=reason]", "税務システムの一時的な拒否")
    await page.click("form.bulk button[value=replay]")
    await until(lambda: job_finished(page), "the replay finishes")
    await shoot(page, "replay-one-ja")

    await until(lambda: _no_dead(tenants, A), "A's letter is delivered")
    with AuditLog.open(tenants.bus.settings) as log:
        life = [(r.event.event.value, r.event.actor, r.event.reason) for r in log.life(a_letter.message_id)]
    assert ("viewed_unmasked", "op-a", f"dead letter {a_letter.id} shown unmasked") in life
    replays = [e for e in life if e[0] == "replayed"]
    assert replays and replays[0][1] == "op-a" and "税務システムの一時的な拒否" in str(replays[0][2])
    assert life[-1][0] == "delivered"

    await page.goto(f"{base}/audit")
    assert await page.get_attribute("[data-audit]", "data-audit") == "ok"
    await shoot(page, "audit-ja")


async def test_a_viewer_sees_its_municipalitys_letter_but_may_not_replay_it(tenants: Tenants, browser: Any) -> None:
    page = await browser.new_page(viewport=WIDE)
    await log_in(page, tenants.base, "viewer-b", PASSWORD)
    await page.goto(f"{tenants.base}/dead")
    assert await page.locator("table.letters tbody tr td:nth-child(4)").all_inner_texts() == [B]
    assert await page.locator("form.bulk").count() == 0  # no replay or discard for a viewer
    letter = tenants.console.data.dead_letters(None, municipality=B)[0]
    await page.goto(f"{tenants.base}/dead/{letter.id}")
    assert await page.locator("form.bulk").count() == 0
    csrf = await page.get_attribute("form[action='/logout'] input[name=csrf]", "value")
    forged = await page.request.post(f"{tenants.base}/dead/resolve", form={
        "csrf": str(csrf), "action": "replay", "id": str(letter.id), "reason": "not mine to do"})
    assert forged.status == 403
    unmask = await page.request.post(f"{tenants.base}/dead/{letter.id}", form={"csrf": str(csrf)})
    assert unmask.status == 403  # a viewer never sees the personal data
    without_token = await page.request.post(f"{tenants.base}/logout", form={})
    assert without_token.status in (200, 303)  # logout needs no token to refuse; the session stays
    assert tenants.console.data.dead_letter(letter.id, None).state == "dead"  # type: ignore[union-attr]


async def test_the_pages_speak_english_when_asked_and_remember_it(tenants: Tenants, browser: Any) -> None:
    page = await browser.new_page(viewport=WIDE)
    await page.goto(f"{tenants.base}/login?lang=en")
    assert await page.inner_text("h1") == "Log in"
    assert await page.get_attribute("html", "lang") == "en"
    await shoot(page, "login-en")
    await log_in(page, tenants.base, "op-a", PASSWORD)
    assert await page.inner_text("h1") == "Overview"  # remembered in a cookie
    await page.goto(f"{tenants.base}/dead")
    assert await page.inner_text("h1") == "Dead letters"
    await shoot(page, "dead-letters-en")
    await page.goto(f"{tenants.base}/search?message_id={tenants.refused[A]}")
    assert "The life of message" in await page.inner_text("h2")
    await shoot(page, "search-en")
    await page.goto(f"{tenants.base}/?lang=ja")
    assert await page.inner_text("h1") == "概要"



async def _no_dead(tenants: Tenants, municipality: str) -> bool:
    return not tenants.console.data.dead_letters(None, municipality=municipality)
