"""SIGHUP to `renkei run` reloads [sources]: a source's token is rotated without a restart
(add the new one, the vendor switches, remove the old one), and a file that does not load
changes nothing. A real process on the embedded broker."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from run_support import BusProcess
from tenants_support import change_of

from bus.catalog import Catalog
from bus.tenancy import hash_token

pytestmark = pytest.mark.integration
A = "131016"
OLD, NEW = "the-old-token-of-jumin-" + "o" * 30, "the-new-token-of-jumin-" + "n" * 30


def _config(root: Path) -> Path:
    path = root / "renkei.toml"
    path.write_text('[bus]\nstate_dir = "var"\n\n[intake]\nhttp_port = 0\n\n'
                    f'[sources.jumin]\nmunicipalities = ["{A}"]\ntoken_file = "token"\n', encoding="utf-8")
    (root / "token").write_text(OLD + "\n", encoding="utf-8")
    return path


async def test_sighup_rotates_a_token_without_a_restart(tmp_path: Path) -> None:
    catalog = Catalog.load()
    config = _config(tmp_path)
    bodies = iter(change_of(catalog, A, seed=s)[0] for s in range(40, 60))
    bus = await BusProcess.start(config)
    try:
        intake = (await bus.wait_for(r"intake listening on (\S+)")).group(1)
        await bus.wait_for(r"renkei run: ready")
        async with httpx.AsyncClient(timeout=30) as client:
            async def post(token: str) -> int:
                answer = await client.post(intake, content=next(bodies), headers={
                    "content-type": "application/xml", "authorization": f"Bearer {token}"})
                return answer.status_code

            assert (await post(OLD), await post(NEW)) == (202, 401)

            (tmp_path / "token").write_text(f"{OLD}\n{hash_token(NEW)}\n", encoding="utf-8")  # 1. add the new one
            bus.proc.send_signal(signal.SIGHUP)
            await bus.wait_for(r"reloaded \[sources\] from .*: 1 source, 2 tokens")
            assert (await post(OLD), await post(NEW)) == (202, 202)

            (tmp_path / "token").write_text("short\n", encoding="utf-8")  # a mistake: nothing changes
            bus.proc.send_signal(signal.SIGHUP)
            await bus.wait_for(r"reload refused, the sources stay as they were: .*token")
            assert (await post(OLD), await post(NEW)) == (202, 202)

            (tmp_path / "token").write_text(f"{hash_token(NEW)}\n", encoding="utf-8")  # 3. remove the old one
            bus.proc.send_signal(signal.SIGHUP)
            await bus.wait_for(r"reloaded \[sources\] from .*: 1 source, 1 token\b")
            assert (await post(OLD), await post(NEW)) == (401, 202)
    finally:
        code = await bus.stop()
    assert code == 0, bus.output[-3000:]
    assert OLD not in bus.output and NEW not in bus.output  # no token is ever printed
