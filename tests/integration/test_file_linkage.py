"""File linkage end to end: a CP932 (Shift_JIS) CSV file of resident changes dropped into the
inbox of `renkei run --with-simulators` reaches exactly the simulators the routes name; a
row with a private-use 外字 is rejected with its code point, the others go through; a file
whose header is not the layout is rejected whole; a fixed-width CP932 file (`.dat`) likewise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from run_support import BusProcess, eventually, expected_deliveries, free_ports, write_config

from adapters.simulators import SYSTEMS
from adapters.transports.csv_layout import Layout, control_record, encode_rows
from adapters.transports.fixed_layout import FixedLayout, fixed_control
from bus.catalog import Catalog
from bus.synthetic.samples import sample_records

pytestmark = pytest.mark.integration


async def through_the_inbox(tmp_path: Path, catalog: Catalog, good: list[dict[str, Any]],
                            files: dict[str, bytes]) -> dict[str, Any]:
    """Drop `files` into the inbox of `renkei run --with-simulators`; wait until every simulator
    holds what the routes send it of `good` and every file is answered: the result files, by stem."""
    ports = dict(zip(sorted(SYSTEMS), free_ports(len(SYSTEMS)), strict=True))
    destinations = {name: f"http://127.0.0.1:{port}/messages" for name, port in ports.items()}
    config = write_config(tmp_path / "renkei.toml", destinations=destinations, inbox=True)
    expected = expected_deliveries(catalog, good)
    bus = await BusProcess.start(config, "--with-simulators")
    inbox = tmp_path / "inbox"
    try:
        await bus.wait_for(r"renkei run: ready")
        for name, data in files.items():
            (inbox / f"{name}.part").write_bytes(data)
            (inbox / f"{name}.part").rename(inbox / name)
        async with httpx.AsyncClient(timeout=30) as client:

            async def all_arrived() -> bool:
                for name, ids in expected.items():
                    held = (await client.get(destinations[name].replace("/messages", "/received"))).json()
                    if {m["message_id"] for m in held["messages"]} != ids:
                        return False
                return True

            await eventually(all_arrived, "every simulator holds what the routes send it")

        async def answered() -> bool:
            return len(list((inbox / "rejected").glob("*.result.json"))) == len(files)

        await eventually(answered, "every file answered")
    finally:
        await bus.stop()
    return {p.name.split(".")[0]: json.loads(p.read_text()) for p in (inbox / "rejected").glob("*.result.json")}


async def test_a_cp932_csv_file_in_the_inbox_reaches_every_expected_destination(tmp_path: Path) -> None:
    catalog = Catalog.load()
    layout = Layout(catalog.get("jumin.idou"))
    records = list(sample_records("jumin.idou", catalog, seed=12, n=9))
    good, gaiji = records[:8], records[8]
    # our own writer refuses a 外字 (never replaces it), so the file carries it as a vendor's would:
    # the CP932 user-defined code F040, which reads as the private-use U+E000
    rows = [layout.headers(), *(layout.row(r) for r in good[:4])]
    head = encode_rows(rows, "cp932")
    gaiji_row = encode_rows([layout.row({**gaiji, "name": {**gaiji["name"], "given_name": "子"}})], "cp932")
    gaiji_row = gaiji_row.replace("子".encode("cp932"), b"\xf0\x40" + "子".encode("cp932"), 1)
    tail = encode_rows([layout.row(r) for r in good[4:]], "cp932")
    data = head + gaiji_row + tail
    data += control_record(data)

    results = await through_the_inbox(tmp_path, catalog, good, {"changes.csv": data,
                                                                "wrong.csv": "氏名,住所\r\n".encode("cp932")})
    changes = results["changes"]
    assert changes["counts"] == {"accepted": 8, "duplicate": 0, "rejected": 1}
    assert changes["encoding"] == "cp932"
    [row] = changes["rejected_rows"]
    assert row["row"] == 6 and [i["code"] for i in row["issues"]] == ["R440"]
    assert "U+E000" in json.dumps(row["issues"], ensure_ascii=False)
    assert [i["code"] for i in results["wrong"]["issues"]] == ["R213"]


async def test_a_fixed_width_cp932_file_in_the_inbox_reaches_every_expected_destination(tmp_path: Path) -> None:
    catalog = Catalog.load()
    layout = FixedLayout(catalog.get("jumin.idou"), catalog.codelists)
    records = list(sample_records("jumin.idou", catalog, seed=13, n=5))
    good, gaiji = records[:4], records[4]
    # a vendor's 外字: the CP932 user-defined code F040 (U+E000) in place of one 2-byte character
    gaiji_record = layout.encode([("", {**gaiji, "name": {**gaiji["name"], "given_name": "子子"}})])
    gaiji_record = gaiji_record.replace("子".encode("cp932"), b"\xf0\x40", 1)
    data = layout.encode([("", r) for r in good[:2]]) + gaiji_record + layout.encode([("", r) for r in good[2:]])
    data += fixed_control(data)

    results = await through_the_inbox(tmp_path, catalog, good, {"changes.dat": data})
    result = results["changes"]
    assert result["counts"] == {"accepted": 4, "duplicate": 0, "rejected": 1}
    assert (result["encoding"], result["layout"]) == ("cp932", "fixed")
    [row] = result["rejected_rows"]
    assert row["row"] == 3 and [i["code"] for i in row["issues"]] == ["R440"]
    assert "U+E000" in json.dumps(row["issues"], ensure_ascii=False)
    # the inbox kept the file's progress where `renkei status` and the console read it
    from bus.status import read_progress

    [progress] = read_progress(tmp_path / "var")
    assert (progress.file, progress.state, progress.done, progress.total, progress.rejected) == (
        "changes.dat", "done", 5, 5, 1)
