"""Fixtures of the end-to-end tests: a fresh RabbitMQ vhost per test module, so the bus's
fixed queue names (renkei.intake, renkei.dest.*) never meet another test's messages."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _rabbitmq(*args: str) -> str:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "rabbitmq.sh"), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/rabbitmq.sh {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


@pytest.fixture(scope="module")
def amqp_vhost_url(amqp_url: str) -> Iterator[str]:
    """The URL of a vhost of the test node made for this module, deleted afterwards."""
    name = f"renkei-test-{uuid.uuid4().hex[:8]}"
    url = _rabbitmq("vhost", name)
    yield url
    _rabbitmq("drop-vhost", name)
