"""Driving the 3-node RabbitMQ cluster of scripts/rabbitmq-cluster.sh from the tests."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from adapters.simulators import SimulatorState
from bus.app import Bus
from bus.demo import FeedItem
from bus.errors import BrokerError
from bus.masking import Pseudonymizer
from bus.routing.router import RouteTable

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "rabbitmq-cluster.sh"
NODES = ("c1", "c2", "c3")


def node_name(node: str) -> str:
    """The Erlang node name of `node` (c1..c3), under scripts/rabbitmq-cluster.sh's prefix."""
    return f"{os.environ.get('RENKEI_CLUSTER_NODE_PREFIX', 'renkei-c')}{node.removeprefix('c')}@localhost"


def script(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/rabbitmq-cluster.sh {' '.join(args)} failed ({done.returncode}): "
                           f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


@dataclass(frozen=True)
class Cluster:
    """The running cluster: one AMQP URL per node, and the script's operations on it."""

    urls: dict[str, str]  # c1 → amqp://guest:guest@127.0.0.1:5681/

    def vhost(self, name: str) -> dict[str, str]:
        """Create vhost `name` (guest may use it); node → URL of that vhost on the node."""
        script("ctl", "c1", "add_vhost", name)
        script("ctl", "c1", "set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return {node: f"{url}{name}" for node, url in self.urls.items()}

    def kill(self, node: str) -> None:
        """kill -9 the node's VM."""
        script("kill", node)

    def restart(self, node: str) -> None:
        """Start a killed node again with its data: it rejoins and its queue members catch up."""
        script("restart", node, timeout=180)

    def active_queues(self, vhost: str, pid: int, *, via: str = "c1") -> set[str]:
        """The queues of `vhost` on which the OS process `pid` is the active consumer (single
        active consumer), matched through its connections' local ports."""
        ports = local_ports(pid)

        def listed(*args: str) -> list[dict[str, Any]]:
            return list(json.loads(script("ctl", via, *args, "-p", vhost, "--formatter", "json") or "[]"))

        connections = {c["pid"] for c in listed("list_connections", "pid", "peer_port") if c["peer_port"] in ports}
        channels = {c["pid"] for c in listed("list_channels", "pid", "connection") if c["connection"] in connections}
        return {c["queue_name"] for c in listed("list_consumers", "queue_name", "channel_pid", "active")
                if c["channel_pid"] in channels and c["active"]}

    def who_consumes(self, vhost: str, queues: Iterable[str], *, via: str = "c1") -> dict[str, list[dict[str, Any]]]:
        """queue → its consumers (active or standing by, prefetch, and the channel's unacked count
        and the local port of its connection, which `local_ports` matches to a process): for a
        failure's message."""
        def listed(*args: str) -> list[dict[str, Any]]:
            return list(json.loads(script("ctl", via, *args, "-p", vhost, "--formatter", "json") or "[]"))

        wanted = set(queues)
        ports = {c["pid"]: c["peer_port"] for c in listed("list_connections", "pid", "peer_port")}
        channels = {c["pid"]: c for c in listed("list_channels", "pid", "connection", "messages_unacknowledged")}
        found: dict[str, list[dict[str, Any]]] = {q: [] for q in wanted}
        for c in listed("list_consumers", "queue_name", "channel_pid", "active", "prefetch_count"):
            if c["queue_name"] in wanted:
                channel = channels.get(c["channel_pid"], {})
                found[c["queue_name"]].append({"active": c["active"], "prefetch": c["prefetch_count"],
                                               "unacked": channel.get("messages_unacknowledged"),
                                               "port": ports.get(channel.get("connection"))})
        return found

    def queues(self, vhost: str, *, via: str = "c1") -> dict[str, dict[str, Any]]:
        """name → {type, leader, members, online, messages, messages_ready, messages_unacknowledged}
        of every queue of `vhost`, as node `via` sees it."""
        out = script("ctl", via, "list_queues", "-p", vhost, "name", "type", "leader", "members", "online",
                      "messages", "messages_ready", "messages_unacknowledged", "--formatter", "json")
        return {q["name"]: q for q in json.loads(out or "[]")}


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets the process `pid` holds (from /proc, Linux)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = str(fd.readlink())
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@contextlib.contextmanager
def exclusive(path: Path, within: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        deadline = time.monotonic() + within
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another test run holds {path} (it kills nodes: runs take turns)") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def bus_url(urls: dict[str, str], nodes: Iterable[str]) -> str:
    """One URL naming `nodes` (amqp://u:p@h1:p1,h2:p2/vhost), as bus.brokers.amqp.node_urls reads it."""
    nodes = list(nodes)
    first = urls[nodes[0]]
    scheme, _, rest = first.partition("://")
    credentials, _, tail = rest.partition("@")
    path = tail.partition("/")[2]
    hosts = ",".join(urls[n].partition("@")[2].partition("/")[0] for n in nodes)
    return f"{scheme}://{credentials}@{hosts}/{path}"


def expected_keys(routes: RouteTable, pseudonym_key: bytes, feed: Iterable[FeedItem]) -> dict[str, set[str]]:
    """destination → the idempotency keys it must apply, from the route table alone."""
    pseudonyms = Pseudonymizer(pseudonym_key)
    expected: dict[str, set[str]] = {}
    for item in feed:
        record = item.record
        assert record is not None
        municipality = record["municipality_code"]
        message_id = pseudonyms.message_id(municipality, record["address_number"], int(record["history_number"]))
        for match in routes.route(record, municipality):
            expected.setdefault(match.route.destination, set()).add(f"{message_id}.{match.route.destination}")
    return expected


def out_of_order(states: Iterable[SimulatorState]) -> int:
    """Deliveries applied before an earlier change of the same resident at the same system."""
    late = 0
    for state in states:
        last: Counter[str] = Counter()
        for message in sorted(state.messages.values(), key=lambda m: m.number):
            if message.sequence is not None and message.sequence < last[message.subject]:
                late += 1
            last[message.subject] = max(last[message.subject], message.sequence or 0)
    return late


class Tally(Protocol):
    accepted: int
    retried_submits: int  # submits that raised (not accepted): the source sends them again


async def feed_changes(bus: Bus, feed: list[FeedItem], tally: Tally, *, feeders: int, rate: float,
                       attempts: int = 30) -> None:
    """Submit `feed` through `bus`'s intake at `rate` changes/s at most, over `feeders` lanes
    (a resident's changes stay in one lane, in order); a submit that raises was not accepted,
    and is sent again."""
    lanes: list[list[FeedItem]] = [[] for _ in range(feeders)]
    for item in feed:
        lanes[item.partition % feeders].append(item)
    interval = feeders / rate

    async def lane(items: list[FeedItem]) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for item in items:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += interval
            for _ in range(attempts):
                try:
                    answer = await bus.intake.submit(item.body, content_type="application/xml", source="jumin")
                except BrokerError:
                    tally.retried_submits += 1
                    await asyncio.sleep(0.5)
                    continue
                assert answer.status == "accepted", answer
                tally.accepted += 1
                break
            else:
                raise AssertionError(f"the intake did not accept a change in {attempts} attempts")

    await asyncio.gather(*(lane(items) for items in lanes))
