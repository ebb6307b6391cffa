"""How the receiver kit learns what a receiving system applied (to count effects and their order).

Two ways, as docs/delivery-contract.md offers them to vendors:

- ``GET <base>/received`` answering ``{"messages": [{"key", "message_id", "number"}, ...]}``
  in the order applied (or with `number` giving it), as the simulators do;
- a file of applied ``Idempotency-Key`` values, one a line, in the order applied, that the
  vendor's system writes (``--applied-keys FILE``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

__all__ = ["Applied", "FileReadback", "HttpReadback", "Readback", "settle"]


@dataclass(frozen=True, slots=True)
class Applied:
    """One effect the receiver reports: its key, the message id when known."""

    key: str
    message_id: str | None = None


class Readback(Protocol):
    where: str

    async def applied(self) -> list[Applied]:
        """Every effect so far, in the order applied."""
        ...


class HttpReadback:
    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.where = url
        self._client = client

    async def applied(self) -> list[Applied]:
        response = await self._client.get(self.where)
        response.raise_for_status()
        items = response.json().get("messages", [])
        if any("number" in m for m in items):
            items = sorted(items, key=lambda m: int(m.get("number") or 0))
        return [Applied(str(m["key"]), m.get("message_id")) for m in items if isinstance(m, dict) and "key" in m]

    @classmethod
    async def probe(cls, url: str, client: httpx.AsyncClient) -> HttpReadback | None:
        """A read-back at `url` when it answers as the simulators' /received does, else None."""
        try:
            response = await client.get(url)
            if response.status_code == 200 and isinstance(response.json().get("messages"), list):
                return cls(url, client)
        except (httpx.HTTPError, ValueError, AttributeError):
            pass
        return None


class FileReadback:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    async def applied(self) -> list[Applied]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [Applied(line.strip()) for line in lines if line.strip()]


def effects_of(applied: list[Applied], key: str, message_id: str) -> int:
    """How many effects one message had: entries with its key, or its message id under another
    key (a receiver that rewrites or ignores the key applies the same change twice)."""
    return sum(1 for a in applied if a.key == key or (a.message_id is not None and a.message_id == message_id))


async def settle(readback: Readback, done: Callable[[list[Applied]], bool], within: float) -> list[Applied]:
    """Read back until `done` holds or `within` seconds passed (a receiver may apply after it
    answered); returns the last reading."""
    deadline = time.monotonic() + within
    while True:
        applied = await readback.applied()
        if done(applied) or time.monotonic() >= deadline:
            return applied
        await asyncio.sleep(0.1)
