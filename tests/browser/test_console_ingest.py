"""The console's overview shows the bulk files being ingested, in a real browser: a CSV file
taken through the bus's intake (done, its counts) and one whose process was killed mid-file
(interrupted, resumable, records done of the total), in Japanese and in English; an operator
of another municipality sees neither."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from console_support import WIDE, log_in, shoot, until

from adapters.server import EmbeddedServer
from adapters.sources.bulk import open_bulk
from adapters.sources.ingest import Ingester
from adapters.transports.csv_layout import Layout, control_record, encode_rows
from bus.app import Bus, BusParts
from bus.catalog import Catalog
from bus.console import Accounts, Console, console_options
from bus.settings import Settings
from bus.status import IngestProgress, progress_dir
from bus.synthetic.samples import sample_records

A, B = "131016", "271004"
KEY = "renkei-console-ingest-test-key-0123"
PASSWORD = "correct horse battery"


async def test_the_overview_shows_each_bulk_files_progress_to_those_who_may_see_it(tmp_path: Path,
                                                                                 browser: Any) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text("\n".join(["[bus]", 'state_dir = "var"', f'municipalities = ["{A}"]', "", "[logging]",
                                 'level = "warning"', "", "[console]", "port = 0", "sample_every = 0.5", ""]),
                      encoding="utf-8")
    settings = Settings.load(config, env={"RENKEI_PSEUDONYM_KEY": KEY})
    catalog = Catalog.load()
    layout = Layout(catalog.get("jumin.idou"))
    rows = [layout.row(r) for r in sample_records("jumin.idou", catalog, seed=8, n=30, municipality=A)]
    rows[4] = rows[4][:-1]  # row 6: a column short
    data = encode_rows([layout.headers(), *rows], "utf-8")
    (tmp_path / "changes.csv").write_bytes(data + control_record(data))
    state_dir = settings.bus.state_dir
    bus = Bus(settings, catalog=catalog)
    await bus.start(BusParts(router=False, deliverers=False))
    try:
        bulk = open_bulk(tmp_path / "changes.csv", "csv", catalog, None)
        done = await Ingester(bus.intake, source="ingest", checkpoints=progress_dir(state_dir)).run(bulk)
        assert done.counts() == {"accepted": 29, "duplicate": 0, "rejected": 1}
        killed = IngestProgress("extract.avro", "ingest", "avro", "jumin.idou", "d" * 64, 100_000, done=40_000,
                                accepted=40_000, pid=2**22 + 4321)  # its process is gone: interrupted
        (progress_dir(state_dir) / "killed.json").write_text(json.dumps(killed.to_dict()), encoding="utf-8")
        accounts = Accounts(console_options(settings, env={}).users_file)  # type: ignore[arg-type]
        accounts.add("op-a", PASSWORD, role="operator", municipalities=[A])
        accounts.add("op-b", PASSWORD, role="operator", municipalities=[B])
        console = Console(settings, console_options(settings, env={}), serve=EmbeddedServer, broker=bus.broker,
                          destinations=lambda: bus.destinations)
        await console.start()
        try:
            page = await browser.new_page(viewport=WIDE)
            await log_in(page, console.url, "op-a", PASSWORD)

            async def shown() -> bool:
                await page.goto(f"{console.url}/")
                return bool(await page.locator("table.ingests tbody tr").count() == 2)

            await until(shown, "the overview lists both bulk files")
            states = await page.locator("table.ingests tbody tr").evaluate_all(
                "rows => rows.map(r => [r.dataset.file, r.dataset.state, r.innerText])")
            by_file = {f: (s, text) for f, s, text in states}
            assert by_file["changes.csv"][0] == "done" and "完了" in by_file["changes.csv"][1]
            assert "30 / 30" in by_file["changes.csv"][1]
            assert by_file["extract.avro"][0] == "interrupted" and "40000 / 100000 (40%)" in by_file["extract.avro"][1]
            assert "再開できます" in by_file["extract.avro"][1]
            assert "一括ファイル取込" in await page.inner_text("main")
            await page.locator("table.ingests").scroll_into_view_if_needed()
            await shoot(page, "overview-bulk-files-ja")
            await page.goto(f"{console.url}/?lang=en")
            assert "Bulk files" in await page.inner_text("main")
            assert "interrupted (resumable)" in await page.inner_text("table.ingests")
            await shoot(page, "overview-bulk-files-en")

            other = await browser.new_page(viewport=WIDE)
            await log_in(other, console.url, "op-b", PASSWORD)
            assert await other.locator("table.ingests").count() == 0
            assert "changes.csv" not in await other.content()
        finally:
            await console.stop()
    finally:
        await bus.stop()
