"""RabbitMQ for the benchmarks: a vhost of the run's own (the bus's queue names are fixed,
renkei.*, so a run must not meet another's messages), and the node's own CPU time.

    with vhost(start=True) as url:   # scripts/rabbitmq.sh vhost NAME ... drop-vhost NAME
        ...

The node is the private one of scripts/rabbitmq.sh (RENKEI_RABBITMQ_PORT / _NODENAME / _DIR
choose it), started when it is not running. Its CPU is read from /proc, for the pid the script
keeps in the node's directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

from bench.report import ROOT

__all__ = ["node_cpu_seconds", "rabbitmq", "vhost"]


def rabbitmq(*args: str) -> str:
    """`scripts/rabbitmq.sh ARGS`; its standard output (RuntimeError when it fails)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "rabbitmq.sh"), *args],
                          capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/rabbitmq.sh {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


@contextlib.contextmanager
def vhost(prefix: str = "renkei-bench", *, start: bool = False) -> Iterator[str]:
    """A fresh vhost of the private node (with `start`: started first when it is not running);
    its URL. Deleted afterwards."""
    if start:
        rabbitmq("start")
    name = f"{prefix}-{secrets.token_hex(4)}"
    url = rabbitmq("vhost", name)
    try:
        yield url
    finally:
        rabbitmq("drop-vhost", name)


def node_cpu_seconds() -> float | None:
    """User + system CPU seconds of the node's VM so far (the pid scripts/rabbitmq.sh keeps in its
    node directory); None when it is not running."""
    directory = Path(os.environ.get("RENKEI_RABBITMQ_DIR") or ROOT / ".renkei" / "rabbitmq")
    try:
        pid = (directory / "rabbitmq.pid").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
