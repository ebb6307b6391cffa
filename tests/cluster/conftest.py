"""The 3-node RabbitMQ cluster of scripts/rabbitmq-cluster.sh, started for this directory's
tests and stopped after each module.

Tests here kill nodes, so two test runs must never share the cluster at once: the fixture
holds an exclusive lock (.renkei/cluster-test.lock) for as long as it uses the cluster. A
cluster that cannot start skips the tests locally and fails them under CI, like `amqp_url`.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from cluster_support import NODES, ROOT, Cluster, exclusive, script


@pytest.fixture(scope="module")
def rabbitmq_cluster() -> Iterator[Cluster]:
    """A running 3-node cluster, this test run's alone; stopped after the module, so its three
    VMs do not idle through the rest of the suite."""
    with exclusive(ROOT / ".renkei" / "cluster-test.lock", within=600):
        try:
            urls = script("start", timeout=300).splitlines()
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            why = f"the 3-node RabbitMQ cluster did not start ({exc}); try `bash scripts/rabbitmq-cluster.sh start`"
            if os.environ.get("CI"):
                pytest.fail(f"{why} (CI is set, so this is an error, not a skip)", pytrace=False)
            pytest.skip(why)
        try:
            yield Cluster(dict(zip(NODES, urls, strict=True)))
        finally:
            script("stop", timeout=120)


@pytest.fixture
def cluster_vhost(rabbitmq_cluster: Cluster) -> tuple[str, dict[str, str]]:
    """A fresh vhost on the cluster for one test: (name, node → URL).

    Not deleted afterwards: deleting quorum queues waits on every member, and a test may
    leave a node down; a fresh start of the cluster wipes its data anyway."""
    name = f"renkei-cluster-{uuid.uuid4().hex[:8]}"
    return name, rabbitmq_cluster.vhost(name)
