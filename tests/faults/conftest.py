"""Fixtures of the fault-injection suite (marker `faults`).

The RabbitMQ scenarios kill, restart, cut off and alarm a broker, so they run on a node of
their own — never the shared test node of scripts/test.sh: `faults_node` starts one with
scripts/rabbitmq.sh (port 5677, node renkei-faults@localhost, data in
.renkei/rabbitmq-faults) and holds an exclusive lock while the session uses it. Without
RabbitMQ the scenarios skip locally with a clear message and fail under CI, like `amqp_url`.

Every scenario's checker counts are printed when it ends (visible with -s) and again in
the terminal summary, so CI output shows them without -s.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from checker import REPORTS
from fault_support import ROOT, FaultsNode, exclusive

from bus.catalog import Catalog

NODE = FaultsNode(
    dir=Path(os.environ.get("RENKEI_FAULTS_RABBITMQ_DIR", ROOT / ".renkei" / "rabbitmq-faults")),
    port=int(os.environ.get("RENKEI_FAULTS_RABBITMQ_PORT", "5677")),
    nodename=os.environ.get("RENKEI_FAULTS_RABBITMQ_NODENAME", "renkei-faults@localhost"),
)


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set, so this is an error, not a skip)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def faults_node() -> Iterator[FaultsNode]:
    """The suite's own RabbitMQ node, started (or reused) for the session; stopped at the
    end when this session started it."""
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
        _unavailable("RabbitMQ is not installed (apt-get install rabbitmq-server, or run "
                     "`bash scripts/rabbitmq.sh start` once as root): the fault scenarios need a real broker")
    with exclusive(ROOT / ".renkei" / "faults-test.lock"):
        user = str(os.getpid())
        try:
            NODE.script("start", "--user", user)
        except Exception as exc:
            _unavailable(f"the faults RabbitMQ node did not start ({exc}); try "
                         f"RENKEI_RABBITMQ_DIR={NODE.dir} RENKEI_RABBITMQ_PORT={NODE.port} "
                         f"RENKEI_RABBITMQ_NODENAME={NODE.nodename} bash scripts/rabbitmq.sh start")
        try:
            yield NODE
        finally:
            NODE.script("stop", "--user", user)


@pytest.fixture
def vhost_url(faults_node: FaultsNode) -> Iterator[str]:
    """A fresh vhost of the faults node for one scenario (the bus's queue names are fixed)."""
    name = f"faults-{uuid.uuid4().hex[:8]}"
    url = faults_node.vhost(name)
    yield url
    try:
        faults_node.script("drop-vhost", name)
    except Exception as exc:  # a scenario that left the node down: the next fresh start wipes it
        print(f"[faults] could not drop vhost {name}: {exc}")


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTS:
        return
    terminalreporter.section("fault scenarios: accepted vs applied")
    for report in REPORTS:
        terminalreporter.write_line(report.line())
