"""Helpers for the tests that run `renkei` as a subprocess (integration, faults, cluster).

tests/ is on sys.path (its conftest.py puts it there), so any suite can `import processes`."""

from __future__ import annotations

import os
import socket

__all__ = ["bus_env", "free_ports"]


def bus_env(pseudonym_key: str) -> dict[str, str]:
    """The environment of a bus subprocess: no RENKEI_* from outside, this pseudonym key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RENKEI_")}
    env["RENKEI_PSEUDONYM_KEY"] = pseudonym_key
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_ports(n: int) -> list[int]:
    """`n` TCP ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
