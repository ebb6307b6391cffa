"""Helpers of the `renkei run` / `renkei status` tests: the bus as a real subprocess, its
config, synthetic messages, what the routes should deliver, and the personal values that
must never show in the output."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import processes
from processes import free_ports as free_ports  # re-exported: the integration tests import it from here

from bus.catalog import Catalog
from bus.masking import Pseudonymizer, personal_fields
from bus.paths import routes_dir
from bus.routing.router import RouteTable
from bus.synthetic.samples import sample_records

PSEUDONYM_KEY = "renkei-run-test-key-0123456789"
_NOT_CHECKED = {"birth_date", "body", "title", "name"}  # dates collide with timestamps; name is a record


def bus_env() -> dict[str, str]:
    """The environment of a bus subprocess: no RENKEI_* from outside, a test pseudonym key."""
    return processes.bus_env(PSEUDONYM_KEY)


def write_config(path: Path, *, destinations: dict[str, str], broker_url: str | None = None,
                 inbox: bool = False) -> Path:
    lines = ["[bus]", 'state_dir = "var"']
    if broker_url:
        lines.append(f'broker_url = "{broker_url}"')
    lines += ["", "[intake]", "http_port = 0"]
    if inbox:
        lines.append('inbox = "inbox"')
    lines += ["", "[logging]", 'format = "json"', 'level = "debug"']
    for name, url in destinations.items():
        lines += ["", f"[destinations.{name}]", 'transport = "http"', f'url = "{url}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def changes(catalog: Catalog, n: int, seed: int) -> list[tuple[bytes, dict[str, Any]]]:
    """`n` valid jumin.idou messages (XML) with their records."""
    ks = catalog.get("jumin.idou")
    return [(ks.to_xml(r), r) for r in sample_records("jumin.idou", catalog, seed=seed, n=n)]


def invalid_change(catalog: Catalog, record: dict[str, Any]) -> bytes:
    """A copy of `record` with a wrong check digit in its 地方公共団体コード: rejected (R402)."""
    bad = copy.deepcopy(record)
    code = bad["municipality_code"]
    bad["municipality_code"] = code[:5] + str((int(code[5]) + 1) % 10)
    return catalog.get("jumin.idou").to_xml(bad)


def expected_deliveries(catalog: Catalog, records: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """destination → message ids it should receive, from the shipped route table."""
    table = RouteTable.load(routes_dir(), catalog)
    ids = Pseudonymizer(PSEUDONYM_KEY.encode())
    expected: dict[str, set[str]] = {d: set() for d in table.destinations}
    for r in records:
        message_id = ids.message_id(r["municipality_code"], r["address_number"], int(r["history_number"]))
        for match in table.route(r, r["municipality_code"], message_id=message_id):
            expected[match.route.destination].add(message_id)
    return expected


def by_bus(expected: dict[str, set[str]], destination: str) -> int:
    """How many deliveries `renkei status` must count for `destination`: none for a configured
    destination no route names (the 中間サーバー, fed by the 団体内統合宛名 function)."""
    return len(expected.get(destination, ()))


def personal_values(records: Iterable[dict[str, Any]]) -> set[str]:
    """The personal values of `records` that a leak would show: 個人番号, 宛名番号 and the
    other numbers (7+ digits), names, kana and address parts (any non-ASCII text)."""
    found: set[str] = set()

    def walk(value: Any, key: str | None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif key in personal_fields() and key not in _NOT_CHECKED and isinstance(value, str | int):
            text = str(value)
            if (text.isdigit() and len(text) >= 7) or (not text.isascii() and len(text) >= 2):
                found.add(text)

    for r in records:
        walk(r, None)
    return found


class BusProcess:
    """`python -m bus.cli run ...` as a subprocess, its output collected as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [asyncio.ensure_future(self._read(proc.stdout, self.stdout)),
                         asyncio.ensure_future(self._read(proc.stderr, self.stderr))]

    @classmethod
    async def start(cls, config: Path, *args: str) -> BusProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bus.cli", "run", "--config", str(config), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=bus_env(), cwd=config.parent,
        )
        return cls(proc)

    @staticmethod
    async def _read(stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode("utf-8", "replace"))

    @property
    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)

    async def wait_for(self, pattern: str, within: float = 60.0) -> re.Match[str]:
        """The first stdout line matching `pattern`; fails with the output if the process
        exits or `within` seconds pass first."""
        regex = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            for line in self.stdout:
                if m := regex.search(line):
                    return m
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} (exit {self.proc.returncode}):\n{self.output[-4000:]}")

    async def stop(self, within: float = 30.0) -> int:
        """SIGTERM, then the exit status (killed, and failed, after `within` seconds)."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"renkei run did not stop within {within} s:\n{self.output[-4000:]}") from None
        await asyncio.gather(*self._readers)
        return code


async def renkei(*args: str, cwd: Path, within: float = 60.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bus.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=bus_env(), cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def status_json(config: Path) -> tuple[dict[str, Any], str]:
    code, out, err = await renkei("status", "--config", str(config), "--json", cwd=config.parent)
    assert code == 0, out + err
    return json.loads(out), out + err


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 60.0,
                     poll: float = 0.1) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(poll)


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}
