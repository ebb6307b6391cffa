"""`renkei ingest` killed -9 mid-file and run again: it continues from its checkpoint, every
record is accepted once (the re-sent ones answer "duplicate"), and routed and delivered, every
destination receives each of its changes exactly once: no second effect."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import fastavro
import pytest
from processes import bus_env

from bus.app import Bus, BusParts
from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import BusSettings, Settings
from bus.state import StateStore
from bus.synthetic.samples import sample_records

pytestmark = pytest.mark.faults
KEY = "faults-ingest-pseudonym-key-00001"
N = 6000
BATCH = 200


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_kill_9_of_renkei_ingest_mid_file_resumes_and_nothing_takes_effect_twice(tmp_path: Path,
                                                                                     catalog: Catalog) -> None:
    records = list(sample_records("jumin.idou", catalog, seed=20261205, n=N))
    ids = Pseudonymizer(KEY.encode())
    message_ids = [ids.message_id(r["municipality_code"], r["address_number"], int(r["history_number"]))
                   for r in records]
    assert len(set(message_ids)) == N
    with (tmp_path / "extract.avro").open("wb") as fh:
        fastavro.writer(fh, catalog.get("jumin.idou").avro_schema, records, metadata={"renkei.kind": "jumin.idou"})
    state_dir = tmp_path / "state"
    env = {**bus_env(KEY), "RENKEI_STATE_DIR": str(state_dir)}
    command = [sys.executable, "-m", "bus.cli", "ingest", "extract.avro", "--batch", str(BATCH)]

    # 1. the first run, killed -9 once a third of the file is done
    with (tmp_path / "first.log").open("wb") as log:
        first = await asyncio.create_subprocess_exec(*command, env=env, cwd=tmp_path, stdout=log,
                                                     stderr=subprocess.STDOUT)
        checkpoints = state_dir / "ingest"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.returncode is None:
            found = list(checkpoints.glob("*.json")) if checkpoints.is_dir() else []
            if found and json.loads(found[0].read_text())["done"] >= N // 3:
                break
            await asyncio.sleep(0.05)
        assert first.returncode is None, "ended before the kill:\n" + (tmp_path / "first.log").read_text()
        rss = rss_mb(first.pid)
        first.send_signal(signal.SIGKILL)
        await asyncio.wait_for(first.wait(), 10)
    [path] = list(checkpoints.glob("*.json"))
    at_kill = json.loads(path.read_text())
    assert at_kill["state"] == "running" and 0 < at_kill["done"] < N and at_kill["done"] % BATCH == 0
    assert rss < 300, f"RSS {rss:.0f} MB mid-file"

    # 2. run again: it continues from the checkpoint
    second = await asyncio.create_subprocess_exec(*command, "--json", env=env, cwd=tmp_path,
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(second.communicate(), 300)
    assert second.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["resumed_from"] == at_kill["done"]
    # the file's counts: what went in before the checkpoint, then this run's answers (the records the
    # killed run took after its last checkpoint answer "duplicate" now)
    assert result["counts"]["accepted"] + result["counts"]["duplicate"] == N
    assert result["counts"]["rejected"] == 0 and result["counts"]["accepted"] >= at_kill["done"]

    # 3. every change accepted once; routed and delivered, each destination gets each of its changes once
    state = StateStore.snapshot(state_dir / "state.sqlite")
    assert state is not None and state.seen == N and state.rejected == 0
    accepted = state.scope("source")["ingest"]["accepted"]
    # a kill between a batch's confirmed publish and its seen ids (a moment) re-accepts at most a window
    # of batches; the route stage then drops the second copy (checked below: delivered once)
    assert N <= accepted <= N + 2 * BATCH
    settings = Settings(bus=BusSettings(state_dir=state_dir, pseudonym_key=KEY.encode()))
    received: Counter[tuple[str, str]] = Counter()

    def null(message: Outbound) -> Receipt:
        received[(message.envelope.destination or "", message.envelope.message_id)] += 1
        return Receipt.applied(message)

    bus = Bus(settings, catalog=catalog)
    expected = {(m.route.destination, mid) for r, mid in zip(records, message_ids, strict=True)
                for m in bus.routes.route(r, r["municipality_code"], message_id=mid)}
    bus.sinks.update({name: FunctionSink(null) for name in bus.destinations})
    await bus.start(BusParts())
    try:
        assert await bus.wait_idle(within=300)
    finally:
        await bus.stop()
    assert set(received) == expected
    assert [k for k, n in received.items() if n > 1] == []
