"""Fixtures shared by every test directory. Keep this small and general."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The AMQP URL of a real RabbitMQ (`bash scripts/test.sh` starts one and sets it).

    Without it the test is skipped locally, but fails under CI: a missing server must not
    turn into a green build (dramatiq's `raise if CI else skip`).
    """
    url = os.environ.get("RENKEI_TEST_AMQP_URL", "").strip()
    if not url:
        why = ("RabbitMQ is not configured: run `bash scripts/test.sh`, or "
               "`export RENKEI_TEST_AMQP_URL=$(bash scripts/rabbitmq.sh start)`")
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI is set, so this is an error, not a skip)", pytrace=False)
        pytest.skip(why)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The DSN of a real PostgreSQL (`bash scripts/test.sh` starts one and sets it).

    Skipped locally without it, failed under CI, like `amqp_url`.
    """
    url = os.environ.get("RENKEI_TEST_POSTGRES_URL", "").strip()
    if not url:
        why = ("PostgreSQL is not configured: run `bash scripts/test.sh`, or "
               "`export RENKEI_TEST_POSTGRES_URL=$(bash scripts/postgres.sh start)`")
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI is set, so this is an error, not a skip)", pytrace=False)
        pytest.skip(why)
    return url
