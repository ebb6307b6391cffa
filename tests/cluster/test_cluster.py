"""The bus on a 3-node RabbitMQ cluster: kill -9 the node that leads every queue while a
stream of resident changes flows, and nothing accepted is lost, nothing takes effect twice.

The scenario: the bus's queues are declared through c2, so c2 leads all of them (quorum
queues, leader "client-local"), with members on c1 and c3. The bus itself runs connected to
c1. A registry feeds changes at a steady pace; once a quarter of them are accepted and
deliveries are reaching the simulators, c2 is killed. The queues elect new leaders among
c1 and c3 and the flow goes on. At the end every delivery the route table expects has
reached its simulator, exactly once in effect and in each resident's order, and after c2
is restarted every queue has three members online again.

The second scenario kills the node the bus is connected to — c1, which also leads every
queue — with the bus given the cluster URL of all three nodes: the connection fails over to
the next node, restores its channels and consumers there, and the same counts hold.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from cluster_support import Cluster, node_name

from adapters.simulators import SYSTEMS, SimulatorCluster
from adapters.transports.http import HttpSink
from bus.app import Bus
from bus.brokers.amqp import AmqpBroker
from bus.catalog import Catalog
from bus.demo import DemoOptions, FeedItem, demo_feed
from bus.errors import BrokerError
from bus.logs import configure_logging
from bus.masking import Pseudonymizer
from bus.paths import routes_dir
from bus.routing.router import RouteTable
from bus.settings import BusSettings, Settings
from bus.topology import INTAKE_QUEUE, destination_queue

pytestmark = pytest.mark.cluster

CHANGES = 200  # resident changes fed (about 4 deliveries each)
RATE = 40.0  # changes per second at most: the feed lasts 5 s or more, the kill falls in its first half
FEEDERS = 6  # residents are partitioned over the feeders, so each resident's changes stay in order
NODES = ("c1", "c2", "c3")
#: the systems the bus delivers resident changes to: the 中間サーバー is fed by the 統合宛名 function's
#: simulator; the 申請 interfaces take ぴったりサービス applications, which this feed has none of
ROUTED = tuple(name for name in SYSTEMS if name in {r.destination for r in RouteTable.load(routes_dir()).routes
                                                    if r.takes == "jumin.idou"})


@dataclass(frozen=True)
class Setup:
    victim: str  # the node killed mid-stream (declared the queues: it leads them all)
    bus_nodes: tuple[str, ...]  # the nodes of the bus's broker URL, in order


SETUPS = {
    "leader-killed-bus-elsewhere": Setup("c2", ("c1",)),
    "bus-node-killed-failover": Setup("c1", ("c1", "c2", "c3")),
}


def _bus_url(urls: dict[str, str], nodes: tuple[str, ...]) -> str:
    """One URL naming `nodes` (amqp://u:p@h1:p1,h2:p2/vhost), as bus.brokers.amqp.node_urls reads it."""
    first = urls[nodes[0]]
    scheme, _, rest = first.partition("://")
    credentials, _, tail = rest.partition("@")
    path = tail.partition("/")[2]
    hosts = ",".join(urls[n].partition("@")[2].partition("/")[0] for n in nodes)
    return f"{scheme}://{credentials}@{hosts}/{path}"


@dataclass
class Run:
    accepted: int = 0
    retried_submits: int = 0  # submits that raised (not accepted): the source sends them again
    accepted_at_kill: int = 0
    delivered_at_kill: int = 0
    started_at: float = 0.0
    killed_at: float = 0.0
    drained_at: float = 0.0
    settled_at: float = 0.0
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)  # as the broker saw them at the end
    expected: dict[str, set[str]] = field(default_factory=dict)
    sims: SimulatorCluster | None = None


def _settled_queues(cluster: Cluster, vhost: str, via: str) -> dict[str, dict[str, Any]]:
    """The queues once the broker counts nothing ready or unacked in any of them.

    A quorum queue's counts are refreshed on its tick (seconds), so right after the bus went
    idle they may still show deliveries it has settled; a settlement really lost would keep
    its count up and fail here."""
    deadline = time.monotonic() + 20
    while True:
        queues = cluster.queues(vhost, via=via)
        if all(q["messages"] == 0 for q in queues.values()) or time.monotonic() > deadline:
            return queues
        time.sleep(0.5)


def _expected(bus: Bus, feed: list[FeedItem]) -> dict[str, set[str]]:
    """destination → the idempotency keys it must apply, from the route table alone."""
    pseudonyms = Pseudonymizer(bus.settings.bus.pseudonym_key)
    expected: dict[str, set[str]] = {}
    for item in feed:
        record = item.record
        assert record is not None
        municipality = record["municipality_code"]
        message_id = pseudonyms.message_id(municipality, record["address_number"], int(record["history_number"]))
        for match in bus.routes.route(record, municipality):
            expected.setdefault(match.route.destination, set()).add(f"{message_id}.{match.route.destination}")
    return expected


async def _feed(bus: Bus, feed: list[FeedItem], run: Run) -> None:
    """Submit at RATE changes/s; a submit that raises was not accepted, and is sent again."""
    lanes: list[list[FeedItem]] = [[] for _ in range(FEEDERS)]
    for item in feed:
        lanes[item.partition % FEEDERS].append(item)
    interval = FEEDERS / RATE

    async def lane(items: list[FeedItem]) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for item in items:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += interval
            for _ in range(30):
                try:
                    answer = await bus.intake.submit(item.body, content_type="application/xml", source="jumin")
                except BrokerError:
                    run.retried_submits += 1
                    await asyncio.sleep(0.5)
                    continue
                assert answer.status == "accepted", answer
                run.accepted += 1
                break
            else:
                raise AssertionError("the intake did not accept a change in 30 attempts")

    await asyncio.gather(*(lane(items) for items in lanes))


async def _kill_mid_stream(cluster: Cluster, run: Run, victim: str) -> None:
    assert run.sims is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a quarter of the feed accepted, and deliveries arriving
        if run.accepted >= CHANGES // 4 and any(s.effects for s in run.sims.states.values()):
            break
        await asyncio.sleep(0.02)
    run.accepted_at_kill = run.accepted
    run.delivered_at_kill = sum(s.effects for s in run.sims.states.values())
    run.killed_at = time.monotonic()
    await asyncio.to_thread(cluster.kill, victim)


async def _scenario(cluster: Cluster, vhost: str, urls: dict[str, str], state_dir: Path, catalog: Catalog,
                    setup: Setup) -> Run:
    run = Run()
    options = DemoOptions(changes=CHANGES, seed=7, invalid_rate=0.0, duplicate_rate=0.0, feeders=FEEDERS)
    feed = list(demo_feed(catalog, options))
    settings = Settings(bus=BusSettings(state_dir=state_dir, broker_url=_bus_url(urls, setup.bus_nodes)))
    survivor = next(n for n in NODES if n != setup.victim)
    async with SimulatorCluster(catalog=catalog) as sims:
        run.sims = sims
        sinks = {name: HttpSink(sims.messages_url(name), name=name) for name in sims.states}
        bus = Bus(settings, sinks=dict(sinks), catalog=catalog)
        run.expected = _expected(bus, feed)
        # declared through the victim first: it leads every queue the bus uses
        leader = AmqpBroker(urls[setup.victim])
        await leader.connect()
        for queue in (INTAKE_QUEUE, *map(destination_queue, bus.destinations)):
            await leader.declare(queue)
        await leader.close()
        before = await asyncio.to_thread(cluster.queues, vhost)
        led = {name: q["leader"] for name, q in before.items()}
        assert set(led.values()) == {node_name(setup.victim)}, f"the victim must lead every queue: {led}"
        assert all(len(q["members"]) == 3 for q in before.values()), before
        try:
            await bus.start()
            run.started_at = time.monotonic()
            await asyncio.gather(_feed(bus, feed, run), _kill_mid_stream(cluster, run, setup.victim))
            assert await bus.wait_idle(within=90), "the bus did not drain its queues after the node loss"
            run.drained_at = time.monotonic()
            dead = bus.deliveries.dead_list()
            assert not dead, f"{len(dead)} messages were dead-lettered: {dead[:3]}"
            run.queues = await asyncio.to_thread(_settled_queues, cluster, vhost, survivor)
            run.settled_at = time.monotonic()
        finally:
            await bus.stop()
            for sink in sinks.values():
                await sink.aclose()
    return run


@pytest.mark.parametrize("name", list(SETUPS))
def test_killing_the_node_that_leads_every_queue_mid_stream_loses_nothing(
    rabbitmq_cluster: Cluster, cluster_vhost: tuple[str, dict[str, str]], tmp_path: Path, name: str
) -> None:
    setup = SETUPS[name]
    victim = setup.victim
    vhost, urls = cluster_vhost
    configure_logging("console", "warning", stream=sys.stderr)  # the bus's warnings, not a line per message
    try:
        run = asyncio.run(_scenario(rabbitmq_cluster, vhost, urls, tmp_path / "state", Catalog.load(), setup))
    finally:
        structlog.reset_defaults()
    assert run.sims is not None
    states = run.sims.states

    expected = sum(len(keys) for keys in run.expected.values())
    delivered = sum(len(keys & set(states[name].messages)) for name, keys in run.expected.items())
    missing = sum(len(keys - set(states[name].messages)) for name, keys in run.expected.items())
    unexpected = sum(len(set(states[name].messages) - run.expected.get(name, set())) for name in ROUTED)
    duplicated = sum(states[n].effects - len(states[n].messages) for n in ROUTED)  # the simulators count per key
    answered_duplicate = sum(s.duplicates for s in states.values())  # redeliveries that reached a sink
    out_of_order = _out_of_order(run)
    print(f"\ncluster [{name}]: bus on {', '.join(map(node_name, setup.bus_nodes))}; killed {node_name(victim)}, "
          "leader of every queue, "
          f"{run.killed_at - run.started_at:.1f} s into the stream ({run.accepted_at_kill} accepted, "
          f"{run.delivered_at_kill} delivered); drained {run.drained_at - run.killed_at:.1f} s after the kill")
    print(f"cluster: accepted {run.accepted}/{CHANGES} (submits retried {run.retried_submits}), expected {expected}, "
          f"delivered {delivered}, missing {missing}, unexpected {unexpected}, duplicated effects {duplicated}, "
          f"out of order {out_of_order}")
    print(f"cluster: redeliveries answered duplicate {answered_duplicate}; the broker counted every queue empty "
          f"{run.settled_at - run.drained_at:.1f} s after the bus went idle")
    print("cluster: per destination " + ", ".join(
        f"{name} {len(run.expected[name] & set(states[name].messages))}/{len(run.expected[name])}" for name in ROUTED))

    assert run.accepted == CHANGES
    assert 0 < run.accepted_at_kill < CHANGES, "the node was not killed while the registry was still sending"
    assert 0 < run.delivered_at_kill < expected, "the node was not killed while deliveries were flowing"
    assert expected > CHANGES and set(run.expected) == set(ROUTED)
    assert (delivered, missing, unexpected, duplicated, out_of_order) == (expected, 0, 0, 0, 0)

    # the queues lost one member, not their data: new leaders on the survivors, 3 members each
    bus_queues = {INTAKE_QUEUE, *(destination_queue(name) for name in SYSTEMS)}
    queues = run.queues
    assert bus_queues <= set(queues)
    survivors = {node_name(n) for n in NODES if n != victim}
    for name in bus_queues:
        queue = queues[name]
        assert queue["type"] == "quorum", queue
        assert set(queue["members"]) == {*survivors, node_name(victim)}, queue
        assert queue["leader"] in survivors, queue
        assert set(queue["online"]) == survivors, queue
        assert (queue["messages_ready"], queue["messages_unacknowledged"]) == (0, 0), queue

    # the killed node comes back with its data, rejoins, and its members catch up
    rabbitmq_cluster.restart(victim)
    deadline = time.monotonic() + 20
    while True:
        queues = rabbitmq_cluster.queues(vhost, via=victim)
        if all(len(queues[name]["online"]) == 3 for name in bus_queues) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for name in bus_queues:
        assert len(queues[name]["online"]) == 3, queues[name]
        assert queues[name]["messages"] == 0, queues[name]
    print(f"cluster: {node_name(victim)} restarted; every queue has 3 members online again")


def _out_of_order(run: Run) -> int:
    """Deliveries applied before an earlier change of the same resident at the same system."""
    assert run.sims is not None
    late = 0
    for state in run.sims.states.values():
        last: Counter[str] = Counter()
        for message in sorted(state.messages.values(), key=lambda m: m.number):
            if message.sequence is not None and message.sequence < last[message.subject]:
                late += 1
            last[message.subject] = max(last[message.subject], message.sequence or 0)
    return late
