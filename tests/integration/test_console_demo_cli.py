"""`renkei demo --console` as a newcomer runs it: it prints the console's address and a demo
account, keeps the bus running (the account logs in and sees every destination green) until
Ctrl-C, then prints the demo's summary and exits 0."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest
from run_support import bus_env

pytestmark = pytest.mark.integration


async def test_demo_with_console_prints_the_address_and_account_and_runs_until_ctrl_c(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bus.cli", "demo", "--changes", "30", "--out", str(tmp_path / "demo"), "--console",
        "--console-port", "0", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=bus_env(),
        cwd=tmp_path)
    assert proc.stderr is not None and proc.stdout is not None
    said = []
    try:
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), 120)).decode()
            assert line, "the demo ended before printing the console's address:\n" + "".join(said)
            said.append(line)
            found = re.search(r"console: (http://\S+)/\s+account: (\S+)\s+password: (\S+)", line)
            if found:
                break
        base, name, password = found.groups()
        async with httpx.AsyncClient(base_url=base) as client:
            page = await client.get("/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            login = await client.post("/login", data={"csrf": csrf, "name": name, "password": password})
            assert login.status_code == 303
            overview = (await client.get("/")).text
        colours = re.findall(r'data-colour="(\w+)"', overview)
        assert len(colours) >= 7 and set(colours) == {"green"}, colours  # every routed destination
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out.decode() + err.decode()
    assert "OK: every expected delivery happened" in out.decode()
    assert password not in out.decode() + err.decode()  # printed once, on the console's line only
