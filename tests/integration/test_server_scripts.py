"""scripts/rabbitmq.sh's (and scripts/postgres.sh's) ownership of a server: a test run
(`start --user PID`) that started the node stops it at its end, even when something inside
the run (a benchmark's smoke test, which calls a plain `start` to make sure a node is up)
reused it meanwhile. A node left behind holds its port, and the next clone's test command
cannot start its own there."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture
def node(tmp_path: Path, amqp_url: str) -> Iterator[dict[str, str]]:
    """The environment of a node of its own (port, name, directory), stopped afterwards."""
    env = {**os.environ, "RENKEI_RABBITMQ_DIR": str(tmp_path / "rabbitmq"), "RENKEI_RABBITMQ_PORT": "5679",
           "RENKEI_RABBITMQ_NODENAME": f"renkei-script-{os.getpid()}@localhost"}
    yield env
    _script(env, "stop")


def _script(env: dict[str, str], *args: str, script: str = "rabbitmq.sh") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "scripts" / script), *args], env=env, capture_output=True,
                          text=True, timeout=180, check=False)


@pytest.mark.amqp
def test_a_test_run_stops_the_node_it_started_even_after_a_plain_start_reused_it(node: dict[str, str]) -> None:
    run = subprocess.Popen(["sleep", "600"])  # stands for the test run's shell (its PID is the user)
    try:
        assert _script(node, "start", "--user", str(run.pid)).returncode == 0
        assert _script(node, "status").returncode == 0
        assert _script(node, "start").returncode == 0  # a benchmark inside the run: the node is up already
        assert _script(node, "stop", "--user", str(run.pid)).returncode == 0
        assert _script(node, "status").returncode != 0, "the run's node was left running"
    finally:
        run.kill()


@pytest.mark.amqp
def test_a_test_run_stops_the_node_it_started_even_after_it_was_killed_and_started_again(
        node: dict[str, str]) -> None:
    # the fault scenarios kill -9 the run's node and bring it back with a plain `start --keep`:
    # that is still the run's node (CI once found the faults node of the run before holding port 5677)
    run = subprocess.Popen(["sleep", "600"])
    try:
        assert _script(node, "start", "--user", str(run.pid)).returncode == 0
        assert _script(node, "kill").returncode == 0
        assert _script(node, "start", "--keep").returncode == 0
        assert _script(node, "status").returncode == 0
        assert _script(node, "stop", "--user", str(run.pid)).returncode == 0
        assert _script(node, "status").returncode != 0, "the run's node was left running after its restart"
    finally:
        run.kill()


@pytest.mark.amqp
def test_a_node_started_by_hand_outlives_the_test_runs_that_used_it(node: dict[str, str]) -> None:
    run = subprocess.Popen(["sleep", "600"])
    try:
        assert _script(node, "start").returncode == 0
        assert _script(node, "start", "--user", str(run.pid)).returncode == 0
        assert _script(node, "stop", "--user", str(run.pid)).returncode == 0
        assert _script(node, "status").returncode == 0, "a node started by hand was stopped by a test run"
    finally:
        run.kill()


@pytest.mark.postgres
@pytest.mark.parametrize("inside", [
    [("start",)],  # reused inside the run (a benchmark's smoke)
    [("stop",), ("start",)],  # stopped and started again inside the run (the RabbitMQ node's kill, start --keep)
], ids=["reused", "stopped and started again"])
def test_a_test_run_stops_the_postgres_server_it_started_whatever_happened_inside_it(
        postgres_url: str, inside: list[tuple[str, ...]]) -> None:
    # under the project's .renkei/, as the script's own default (the postgres user cannot enter pytest's tmp)
    folder = ROOT / ".renkei" / f"postgres-script-test-{os.getpid()}"
    env = {**os.environ, "RENKEI_POSTGRES_DIR": str(folder), "RENKEI_POSTGRES_PORT": "5439"}
    run = subprocess.Popen(["sleep", "600"])
    try:
        assert _script(env, "start", "--user", str(run.pid), script="postgres.sh").returncode == 0
        for step in inside:
            assert _script(env, *step, script="postgres.sh").returncode == 0
        assert _script(env, "stop", "--user", str(run.pid), script="postgres.sh").returncode == 0
        assert _script(env, "status", script="postgres.sh").returncode != 0, "the run's server was left running"
    finally:
        run.kill()
        _script(env, "stop", script="postgres.sh")
        shutil.rmtree(folder, ignore_errors=True)
