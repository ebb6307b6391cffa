"""Fixtures shared by every test directory. Keep this small and general."""

from __future__ import annotations

import os

import pytest


def server_url(variable: str, server: str, script: str) -> str:
    """The URL of a real server the test command started (in `variable`).

    Without it the test is skipped locally, but fails under CI: a missing server must not
    turn into a green build (dramatiq's `raise if CI else skip`).
    """
    url = os.environ.get(variable, "").strip()
    if not url:
        why = f"{server} is not configured: run `bash scripts/test.sh`, or `export {variable}=$(bash {script} start)`"
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI is set, so this is an error, not a skip)", pytrace=False)
        pytest.skip(why)
    return url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The AMQP URL of a real RabbitMQ (`bash scripts/test.sh` starts one and sets it)."""
    return server_url("RENKEI_TEST_AMQP_URL", "RabbitMQ", "scripts/rabbitmq.sh")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The DSN of a real PostgreSQL (`bash scripts/test.sh` starts one and sets it)."""
    return server_url("RENKEI_TEST_POSTGRES_URL", "PostgreSQL", "scripts/postgres.sh")
