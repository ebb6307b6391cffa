"""`renkei run --with-simulators` on the embedded broker, as a real process: messages posted to
its HTTP intake and dropped into its inbox reach exactly the simulators the routes name,
`renkei status` (another process, reading the same state_dir) counts them, SIGTERM stops
the bus cleanly, and no personal value appears in anything either command printed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from run_support import (
    BusProcess,
    by_bus,
    by_name,
    changes,
    eventually,
    expected_deliveries,
    free_ports,
    invalid_change,
    personal_values,
    renkei,
    status_json,
    write_config,
)

from adapters.simulators import SYSTEMS
from bus.catalog import Catalog

pytestmark = pytest.mark.integration
SENT = 12


async def test_run_with_simulators_delivers_what_the_routes_say_and_status_counts_it(tmp_path: Path) -> None:
    catalog = Catalog.load()
    ports = dict(zip(sorted(SYSTEMS), free_ports(len(SYSTEMS)), strict=True))
    config = write_config(tmp_path / "renkei.toml", inbox=True,
                          destinations={name: f"http://127.0.0.1:{port}/messages" for name, port in ports.items()})
    messages = changes(catalog, SENT + 1, seed=5)
    records = [record for _, record in messages]
    expected = expected_deliveries(catalog, records)
    assert expected["zei"] and len(expected["zei"]) == SENT + 1  # 個人住民税 takes every change

    bus = await BusProcess.start(config, "--with-simulators")
    try:
        intake = (await bus.wait_for(r"intake listening on (\S+)")).group(1)
        await bus.wait_for(r"renkei run: ready")
        async with httpx.AsyncClient(timeout=30) as client:
            for body, _ in messages[:SENT]:
                answer = await client.post(intake, content=body, headers={"content-type": "application/xml"})
                assert answer.status_code == 202, answer.text
            again = await client.post(intake, content=messages[0][0], headers={"content-type": "application/xml"})
            assert again.json()["status"] == "duplicate"
            bad = await client.post(intake, content=invalid_change(catalog, records[0]),
                                    headers={"content-type": "application/xml"})
            assert bad.status_code == 422
            inbox = tmp_path / "inbox"
            (inbox / "last.xml.part").write_bytes(messages[SENT][0])
            (inbox / "last.xml.part").rename(inbox / "last.xml")

            async def received(name: str) -> set[str]:
                held = (await client.get(f"http://127.0.0.1:{ports[name]}/received")).json()
                return {m["message_id"] for m in held["messages"]}

            async def all_arrived() -> bool:
                return all([await received(name) == ids for name, ids in expected.items()])

            await eventually(all_arrived, "every simulator holds what the routes send it")
            # the 中間サーバー gets its 副本 updates from the 団体内統合宛名 function, never from the bus
            assert await received("chukan") and await received("chukan") <= await received("togo")
        assert (inbox / "processed" / "last.xml").exists()

        async def counted() -> bool:
            data, _ = await status_json(config)
            return all(d["delivered"] == by_bus(expected, d["name"]) for d in data["destinations"])

        await eventually(counted, "status counts every delivery", poll=0.2)
        data, status_output = await status_json(config)
        code, table, table_err = await renkei("status", "--config", str(config), "--wide", cwd=tmp_path)
        assert code == 0, table + table_err
    finally:
        exit_code = await bus.stop()

    assert data["broker"]["name"] == "embedded"
    destinations = by_name(data["destinations"])
    assert set(destinations) == set(SYSTEMS)
    for name, ids in expected.items():
        d = destinations[name]
        assert (d["routed"], d["delivered"], d["ready"], d["in_flight"]) == (len(ids), len(ids), 0, 0)
        assert (d["retrying"], d["held"], d["held_messages"], d["dead"], d["dead_lettered_total"]) == (0, 0, 0, 0, 0)
        assert d["consumers"] == 1 and d["sink"] == "http" and d["delayed"] == 0
    assert data["queues"]["intake"]["consumers"] == 1 and set(data["queues"]) == {"intake"}
    assert data["dead_letters"] == {"total": 0, "by_destination": {}, "by_code": {}, "oldest_age_seconds": 0.0}
    sources = by_name(data["sources"])
    assert (sources["http"]["accepted"], sources["http"]["duplicate"], sources["http"]["rejected"]) == (SENT, 1, 1)
    assert sources["directory"]["accepted"] == 1
    assert [p["role"] for p in data["processes"]] == ["all"]
    assert data["processes"][0]["intake"] == intake

    zei = next(line for line in table.splitlines() if line.startswith("zei "))
    assert zei.split()[1:7] == ["http", "0", "0", "1", str(SENT + 1), str(SENT + 1)]

    assert exit_code == 0, bus.output[-4000:]
    assert "renkei run: stopped" in "".join(bus.stdout)
    after, after_output = await status_json(config)
    assert after["processes"] == []
    assert all(d["consumers"] == 0 and d["in_flight"] == 0 for d in after["destinations"])

    printed = bus.output + status_output + table + table_err + after_output
    assert len(personal_values(records)) > 3 * SENT  # names, numbers and addresses of every change
    leaked = sorted(v for v in personal_values(records) if v in printed)
    assert not leaked, f"personal values in the output of renkei run/status: {leaked[:5]}"


async def test_the_simulators_run_apart_and_end_with_a_killed_bus_so_it_starts_again(tmp_path: Path) -> None:
    """`--with-simulators` serves them from a child process (their work is not the bus's). A bus
    killed outright leaves no simulator holding its port: the child sees its standard input
    close and ends, and the bus started again on the same config listens again."""
    ports = dict(zip(["zei", "kokuho"], free_ports(2), strict=True))
    config = write_config(tmp_path / "renkei.toml",
                          destinations={name: f"http://127.0.0.1:{port}/messages" for name, port in ports.items()})

    async def listening(port: int) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    bus = await BusProcess.start(config, "--with-simulators")
    try:
        await bus.wait_for(r"renkei run: ready")
        assert all([await listening(port) for port in ports.values()])
        children = _children(bus.proc.pid)
        assert len(children) == 1  # one process serves every simulator
        [child] = children
        assert "adapters.simulators.apart" in _command_line(child)
        bus.proc.kill()
        await bus.proc.wait()

        async def released() -> bool:
            return not any([await listening(port) for port in ports.values()]) and not _command_line(child)

        await eventually(released, "the simulators end with their killed bus", within=20)
    finally:
        await bus.stop()
    again = await BusProcess.start(config, "--with-simulators")
    try:
        await again.wait_for(r"renkei run: ready")
        assert all([await listening(port) for port in ports.values()])
    finally:
        assert await again.stop() == 0, again.output[-4000:]


def _children(pid: int) -> set[int]:
    return {int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()}


def _command_line(pid: int) -> str:
    """The process's command line ("" once it has ended and been reaped)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""
