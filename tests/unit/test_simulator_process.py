"""The simulators in a process of their own (adapters.simulators.apart): served by a child, read
back from its store and counters, and stopped with it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest
from processes import free_ports

from adapters.simulators.apart import SimulatorProcess
from bus.errors import ConfigError
from bus.paths import schemas_dir

KEY = "m0001.zei"
HEADERS = {"Idempotency-Key": KEY, "X-Renkei-Kind": "zei.jumin", "X-Renkei-Subject": "a" * 32,
           "X-Renkei-Sequence": "1", "Content-Type": "application/xml"}


async def test_a_message_applied_by_the_child_is_in_the_snapshot_and_its_cpu_is_reported(tmp_path: Path) -> None:
    body = sorted((schemas_dir() / "zei.jumin" / "1" / "samples" / "valid").glob("*.xml"))[0].read_bytes()
    async with SimulatorProcess(["zei", "kokuho"], store=tmp_path) as sims:
        assert set(sims.urls) == {"zei", "kokuho"}
        async with httpx.AsyncClient() as client:
            answer = await client.post(sims.messages_url("zei"), content=body, headers=HEADERS)
            again = await client.post(sims.messages_url("zei"), content=body, headers=HEADERS)
        states = await sims.snapshot()
        assert await sims.effects() == 1
    assert answer.json()["status"] == "applied" and again.json()["status"] == "duplicate"
    zei = states["zei"]
    assert list(zei.messages) == [KEY] and zei.messages[KEY].body == body
    assert (zei.effects, zei.duplicates, zei.requests) == (1, 1, 2)
    assert states["kokuho"].effects == 0 and not states["kokuho"].messages
    assert sims.cpu_seconds is not None and sims.cpu_seconds > 0  # the child said so as it stopped
    with pytest.raises(httpx.ConnectError):  # and it is gone
        async with httpx.AsyncClient() as client:
            await client.get(f"{sims.url('zei')}/healthz")


async def test_fixed_ports_are_served_and_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot listen on 127\.0\.0\.1:{busy} for kokuho"):
            await SimulatorProcess(["zei", "kokuho"], store=tmp_path, ports={"kokuho": busy}).start()
    [free] = free_ports(1)
    async with SimulatorProcess(["zei", "kokuho"], store=tmp_path, ports={"zei": free}) as sims:
        assert sims.url("zei") == f"http://127.0.0.1:{free}" and sims.url("kokuho") != sims.url("zei")
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{sims.url('zei')}/healthz")).status_code == 200


async def test_the_child_is_in_a_session_of_its_own_when_asked(tmp_path: Path) -> None:
    """`renkei run`'s: a terminal's Ctrl-C goes to the parent's process group only (the parent
    stops the child once its deliveries are in). A parent killed outright closes the child's
    standard input, and the child ends with it (tests/integration/test_run_embedded.py). The
    demo's shares its session (tests/integration/test_demo_processes.py finds it there)."""
    for own_session in (True, False):
        sims = await SimulatorProcess(["zei"], store=tmp_path, own_session=own_session).start()
        try:
            assert sims._process is not None
            child = sims._process.pid
            assert (os.getsid(child) == child != os.getsid(0)) is own_session
            assert (os.getsid(child) == os.getsid(0)) is not own_session
        finally:
            await sims.stop()


def test_an_unknown_system_is_refused_before_any_process_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no simulator for"):
        SimulatorProcess(["zei", "nowhere"], store=tmp_path)
