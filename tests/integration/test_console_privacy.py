"""The console keeps the privacy rules: a resident whose change was dead-lettered is searched by
宛名番号, unmasked and replayed from the console; none of the resident's personal values shows
in the logs of all that, in the audit store's raw bytes, in /metrics, or in any page but the
one unmasked view that was asked for (and audited)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from run_support import PSEUDONYM_KEY, personal_values
from structlog.testing import capture_logs

from adapters.server import EmbeddedServer
from bus.app import Bus
from bus.catalog import Catalog
from bus.console import Accounts, Console, console_options
from bus.errors import PermanentError
from bus.masking import Pseudonymizer
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import Settings
from bus.synthetic.samples import sample_records

pytestmark = pytest.mark.integration
PASSWORD = "a long passphrase"


async def test_searching_unmasking_and_replaying_leak_no_personal_value(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n\n[logging]\nlevel = "debug"\n\n[console]\nport = 0\n',
                      encoding="utf-8")
    settings = Settings.load(config, env={"RENKEI_PSEUDONYM_KEY": PSEUDONYM_KEY})
    catalog = Catalog.load()
    record = next(iter(sample_records("jumin.idou", catalog, seed=11, n=1)))
    message_id = Pseudonymizer(PSEUDONYM_KEY.encode()).message_id(
        record["municipality_code"], record["address_number"], int(record["history_number"]))
    refused: list[str] = []

    def tax_system(message: Outbound) -> Receipt:
        if not refused:
            refused.append(message.envelope.message_id)
            raise PermanentError("refused once (test)")
        return Receipt.applied(message)

    options = console_options(settings, env={})
    assert options.users_file is not None
    Accounts(options.users_file).add("sato", PASSWORD, role="operator", municipalities=["*"])
    bus = Bus(settings, sinks={"zei": FunctionSink(tax_system)}, catalog=catalog)
    await bus.start()
    console = Console(settings, options, serve=EmbeddedServer, broker=bus.broker)
    pages: list[str] = []
    try:
        body = catalog.get("jumin.idou").to_xml(record)
        assert (await bus.intake.submit(body, content_type="application/xml", source="jumin")).status == "accepted"
        assert await bus.wait_idle(within=60)
        await console.start()
        with capture_logs() as logs:
            async with httpx.AsyncClient(base_url=console.url, follow_redirects=True) as client:
                csrf = re.search(r'name="csrf" value="([^"]+)"', (await client.get("/login")).text).group(1)  # type: ignore[union-attr]
                await client.post("/login", data={"csrf": csrf, "name": "sato", "password": PASSWORD})
                csrf = re.search(r'name="csrf" value="([^"]+)"', (await client.get("/")).text).group(1)  # type: ignore[union-attr]
                letter = console.data.dead_letters(None)[0]
                assert letter.message_id == message_id
                pages.append((await client.get(f"/dead/{letter.id}")).text)
                unmasked = (await client.post(f"/dead/{letter.id}", data={"csrf": csrf})).text
                done = await client.post("/dead/resolve", data={"csrf": csrf, "action": "replay", "id": str(letter.id),
                                                                "reason": "受付の再確認済み"})
                pages.append(done.text)
                assert await bus.wait_idle(within=60)
                await console.monitor.look()
                trail = await client.post("/search", data={"csrf": csrf, "address_number": record["address_number"]})
                pages.append(trail.text)
                pages.append((await client.get(f"/search?message_id={message_id}")).text)
                pages.append((await client.get("/dead")).text)
                pages.append((await client.get("/")).text)
                pages.append((await client.get("/metrics")).text)
    finally:
        await console.stop()
        await bus.stop()
    values = [v for v in personal_values([record]) if len(v) >= 4 or not v.isascii()]
    assert record["address_number"] in values and record["address_number"] in unmasked  # the one asked-for view
    assert 'class="trail"' in trail.text and "zei" in trail.text  # found by 宛名番号, after the replay
    logged = repr(logs)
    audit_bytes = (await asyncio.to_thread(Path(settings.audit_store).read_bytes)).decode("utf-8", "replace")
    for value in values:
        assert value not in logged, value
        assert value not in audit_bytes, value
        for page in pages:
            assert value not in page, value
