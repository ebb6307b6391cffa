"""Every stage N-way on the 3-node cluster, the bus's state shared in PostgreSQL (issue 15).

Three routers (`renkei run --role router --shard-group k/3`) and two deliverers, each
delivering every destination (`--role deliver --shard-group k/2`), run as processes of
their own over three shards per queue, with `[state] store` and `[audit] store` in PostgreSQL.
The queues are declared through c2, so c2 leads them all. While a registry feeds changes:

1. one router is killed (kill -9): its shards pass to the other two, which stood by;
2. one deliverer is killed and its state directory deleted (its container and volume gone):
   the other deliverer takes its shards and finds the same parked residents and held changes;
3. c2 is killed: the queues elect new leaders — the wait queues where retries wait too —
   and router1, connected to c2, fails over to another node under load (its log says so).
   The retries waiting then come back by the movers (bus/brokers/amqp/waiting.py): before,
   they waited in delay queues whose TTL dead-lettered them back, and once stayed stranded
   there after this kill (RabbitMQ's at-least-once dead-letter worker, issue 15).

A broker outage is no poison: the default `poison_after` holds (publishes not confirmed while
the queues elect new leaders are the broker's failure, retried in place and never counted
as crashes, bus.stages.dispatch; before that fix they dead-lettered dozens of changes,
D300). The 国民健康保険 simulator fails one delivery in seven
(retries through the delay tiers, the resident parked meanwhile, wherever its retry lands),
and the 個人住民税 simulator refuses one resident for good: its first change is
dead-lettered, the later ones held behind it.

At the end the checker's counts are clean — accepted, expected, applied, missing,
duplicated, out of order — and `renkei dead list` and `renkei status`, run as processes of
their own with a state directory of their own, see the dead letter and the held changes and
the counters of all the routers and deliverers: the whole bus, from any machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import processes
import psycopg
import pytest
import structlog
from cluster_support import Cluster, bus_url, expected_keys, feed_changes, local_ports, out_of_order

from adapters.simulators import SYSTEMS, SimulatorCluster
from bus.app import Bus
from bus.brokers.amqp import AmqpBroker
from bus.brokers.amqp.topology import queue_arguments
from bus.catalog import Catalog
from bus.demo import DemoOptions, FeedItem, demo_feed
from bus.logs import configure_logging
from bus.masking import Pseudonymizer
from bus.paths import routes_dir
from bus.routing.router import RouteTable
from bus.settings import Settings
from bus.topology import INTAKE_QUEUE, destination_queue, wait_queue

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]

CHANGES = 240
RATE = 30.0  # changes per second at most: the feed lasts 8 s or more
FEEDERS = 6
SHARDS = 3  # one intake shard per router; few quorum queues, so a node loss elects few leaders
ROUTERS = 3
DELIVERERS = 2
VICTIM = "c2"  # the node killed: it leads every queue
KEY = "renkei-cluster-nway-pseudonym-key-01"
ROUTED = tuple(name for name in SYSTEMS if name in {r.destination for r in RouteTable.load(routes_dir()).routes})
#: the nodes each process connects to, in order (process k takes ORDERS[k % 3]; deliverer k
#: ORDERS[k + 1]): router0 and router2 on c1 or c3, router1 on c2, the victim, which leads every
#: queue: its node loss is the loss of every queue's leader and, for router1, of its own
#: connection under load (a router failing over from c2 was once seen looping on unconfirmed
#: publishes while its connection flapped, issue 15). deliver0, on c2 too, is killed before c2.
ORDERS = (("c1", "c3", "c2"), ("c2", "c3", "c1"), ("c1", "c3", "c2"))
FAILING_OVER = "router1"  # the router connected to the victim


@dataclass
class Proc:
    name: str
    state_dir: Path
    process: subprocess.Popen[bytes]


@dataclass
class Run:
    accepted: int = 0
    retried_submits: int = 0
    kills: list[str] = field(default_factory=list)


@pytest.fixture
def shared_store(postgres_url: str) -> Iterator[tuple[str, str]]:
    """(state store URL, audit store URL): fresh schemas of the test server."""
    tag = uuid.uuid4().hex[:10]
    joiner = "&" if "?" in postgres_url else "?"
    yield f"{postgres_url}{joiner}schema=nway_state_{tag}", f"{postgres_url}{joiner}schema=nway_audit_{tag}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for schema in (f"nway_state_{tag}", f"nway_audit_{tag}"):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())


def _config(path: Path, store: str, audit: str, sims: SimulatorCluster) -> Path:
    lines = ["[bus]", f"shards = {SHARDS}", "", "[intake]", "http_port = 0", "",
             "[logging]", 'format = "json"', 'level = "warning"', "",
             "[state]", f'store = "{store}"', "", "[audit]", f'store = "{audit}"', "",
             "[retry]", "attempts = 1", "backoff = 0.05", "tiers = [0.5, 1, 2]", "deadline = 600"]
    for name in ROUTED:
        lines += ["", f"[destinations.{name}]", 'transport = "http"', f'url = "{sims.messages_url(name)}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _env(state_dir: Path, broker_url: str) -> dict[str, str]:
    return {**processes.bus_env(KEY), "RENKEI_STATE_DIR": str(state_dir), "RENKEI_BROKER_URL": broker_url}


def _start(tmp: Path, config: Path, urls: dict[str, str], name: str, args: list[str], order: int) -> Proc:
    state_dir = tmp / "processes" / name
    log = (tmp / "logs" / f"{name}.log").open("wb")
    command = [sys.executable, "-m", "bus.cli", "run", "--config", str(config), *args]
    process = subprocess.Popen(command, env=_env(state_dir, bus_url(urls, ORDERS[order % 3])), stdout=log,
                               stderr=subprocess.STDOUT)
    return Proc(name, state_dir, process)


def _wait_ready(procs: list[Proc], tmp: Path, within: float = 180.0) -> None:
    """Every process has written its first report (it started and consumes)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.process.poll() is not None:
                log = (tmp / "logs" / f"{proc.name}.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"{proc.name} exited with {proc.process.returncode}: {log}")
        if all(list((p.state_dir / "processes").glob("*.json")) for p in procs):
            return
        time.sleep(0.5)
    raise AssertionError("the bus processes did not start within 180 s")


def _stop(procs: list[Proc]) -> None:
    for proc in procs:
        if proc.process.poll() is None:
            proc.process.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.process.wait(30)
        except subprocess.TimeoutExpired:
            proc.process.kill()
            proc.process.wait(10)


def _cli(tmp: Path, config: Path, urls: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A `renkei` command run as from another machine: a state directory of its own."""
    env = _env(tmp / "operator", bus_url(urls, ("c1", "c3")))
    return subprocess.run([sys.executable, "-m", "bus.cli", *args, "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _refused_resident(feed: list[FeedItem]) -> tuple[str, set[str]]:
    """The resident with the most changes, the one zei refuses: its pseudonym, and the
    idempotency keys of its changes at zei."""
    counts = Counter((i.record["municipality_code"], i.record["address_number"]) for i in feed if i.record)
    resident = counts.most_common(1)[0][0]
    pseudonyms = Pseudonymizer(KEY.encode())
    keys = {f"{pseudonyms.message_id(*resident, int(i.record['history_number']))}.zei" for i in feed
            if i.record and (i.record["municipality_code"], i.record["address_number"]) == resident}
    return pseudonyms.subject(*resident), keys


async def _kill_mid_stream(cluster: Cluster, sims: SimulatorCluster, run: Run, router: Proc, deliverer: Proc) -> None:
    async def until(check: object, what: str) -> None:
        deadline = time.monotonic() + 120
        while not check():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"never reached: {what}")
            await asyncio.sleep(0.05)

    await until(lambda: run.accepted >= CHANGES // 4 and any(s.effects for s in sims.states.values()),
                "a quarter accepted and deliveries flowing")
    for proc in (router, deliverer):
        os.kill(proc.process.pid, signal.SIGKILL)
        proc.process.wait(10)
        run.kills.append(f"{proc.name} at {run.accepted} accepted")
    shutil.rmtree(deliverer.state_dir)  # its volume is gone with it
    await until(lambda: run.accepted >= CHANGES // 2, "half accepted")
    await asyncio.to_thread(cluster.kill, VICTIM)
    run.kills.append(f"{VICTIM} at {run.accepted} accepted")


def _settled(cluster: Cluster, vhost: str, feeder: Bus, within: float = 240.0) -> None:
    """Wait until the broker holds no message in any queue of `vhost` — ready, unacked (in the
    processes' hands) or waiting in a wait queue — and no resident waits for a retry, for 6 s
    on end (a quorum queue's counts are refreshed on its tick). The feeder's own `wait_idle`
    cannot tell: RabbitMQ tells another process's unacked count only to the management API."""
    deadline = time.monotonic() + within
    clean_since: float | None = None
    while time.monotonic() < deadline:
        queues = cluster.queues(vhost, via="c1")
        waiting = [p for p in feeder.deliveries.parked_all() if p.status != "dead"]
        if any(q["messages"] for q in queues.values()) or waiting:
            clean_since = None
        elif clean_since is None:
            clean_since = time.monotonic()
        elif time.monotonic() - clean_since >= 6:
            return
        time.sleep(1.0)
    busy = {name: (q["messages_ready"], q["messages_unacknowledged"]) for name, q in queues.items() if q["messages"]}
    raise AssertionError(f"the bus did not settle within {within:.0f} s: {busy} (ready, unacked), {len(waiting)} "
                         f"residents waiting; {cluster.who_consumes(vhost, [n for n in busy if n.endswith('.wait')])}")


def _whereabouts(procs: list[Proc], tmp: Path) -> str:
    """Which process holds which local ports (to match `Cluster.who_consumes`), and what each
    process logged about wait queues and its broker connection: for a failure's message."""
    lines = []
    for proc in procs:
        alive = proc.process.poll() is None
        ports = sorted(local_ports(proc.process.pid)) if alive else "exited"
        logged = (tmp / "logs" / f"{proc.name}.log").read_text(errors="replace").splitlines()
        said = [line[:400] for line in logged if any(w in line for w in ("wait", "broker connection", "mover"))]
        lines.append(f"{proc.name}: ports {ports}; {len(logged)} log lines, of them: {said[-15:]}")
    return "\n".join(lines)


def _explain(keys: list[str], store: str, audit: str) -> None:
    """Where the missing deliveries were last seen: the shared state and the audit trail."""
    with psycopg.connect(store.split("?")[0], autocommit=True) as conn:
        state, trail = store.rsplit("schema=", 1)[1], audit.rsplit("schema=", 1)[1]
        for key in keys:
            message_id, _, destination = key.rpartition(".")
            routed = conn.execute(f"SELECT destinations FROM {state}.routed WHERE message_id = %s".encode(),
                                  (message_id,)).fetchall()
            parked = conn.execute(f"SELECT destination, status FROM {state}.parked p WHERE EXISTS (SELECT 1 FROM"
                                  f" {state}.held h WHERE h.message_id = %s AND h.subject = p.subject)".encode(),
                                  (key,)).fetchall()
            events = conn.execute(f"SELECT event, destination, at FROM {trail}.audit_records WHERE message_id IN"
                                  f" (%s, %s) ORDER BY seq".encode(), (message_id, key)).fetchall()
            print(f"missing {key}: routed {routed}, held behind {parked}, audit "
                  f"{[(e, d) for e, d, _ in events if d in (None, destination, 'renkei.route')]}")


async def _scenario(cluster: Cluster, vhost: str, urls: dict[str, str], tmp: Path, store: str,
                    audit: str) -> dict[str, object]:
    catalog = Catalog.load()
    feed = list(demo_feed(catalog, DemoOptions(changes=CHANGES, seed=11, invalid_rate=0.0, duplicate_rate=0.0,
                                               feeders=FEEDERS)))
    refused, refused_keys = _refused_resident(feed)
    (tmp / "logs").mkdir(parents=True)
    run = Run()
    procs: list[Proc] = []
    async with SimulatorCluster(catalog=catalog) as sims:
        sims.states["zei"].control(mode="reject", reject_subject=refused)
        sims.states["kokuho"].control(mode="fail", ratio=1 / 7, seed=3)
        config = _config(tmp / "renkei.toml", store, audit, sims)
        settings = Settings.load(config, env=_env(tmp / "feeder", bus_url(urls, ("c1", "c3", "c2"))))
        feeder = Bus(settings, catalog=catalog)
        leader = AmqpBroker(urls[VICTIM], shards=SHARDS)  # declared through c2 first: it leads every queue
        await leader.connect()
        for queue in (INTAKE_QUEUE, *map(destination_queue, feeder.destinations)):
            await leader.declare(queue)
            async with leader.admin_channel() as channel:  # the wait queue too: c2 leads where retries wait
                await channel.declare_queue(wait_queue(queue), durable=True, arguments=queue_arguments())
        await leader.close()
        try:
            procs += [_start(tmp, config, urls, f"router{k}", ["--role", "router", "--shard-group", f"{k}/{ROUTERS}"],
                             k) for k in range(ROUTERS)]
            procs += [_start(tmp, config, urls, f"deliver{k}",
                             ["--role", "deliver", "--shard-group", f"{k}/{DELIVERERS}"], k + 1)
                      for k in range(DELIVERERS)]
            await asyncio.to_thread(_wait_ready, procs, tmp)
            # the victims took shards of their own: the kills below take active consumers away
            active = {p.name: await asyncio.to_thread(cluster.active_queues, vhost, p.process.pid)
                      for p in (procs[0], procs[3])}
            await feeder.broker.connect()
            started = time.monotonic()
            await asyncio.gather(feed_changes(feeder, feed, run, feeders=FEEDERS, rate=RATE, attempts=60),
                                 _kill_mid_stream(cluster, sims, run, procs[0], procs[3]))
            try:
                await asyncio.to_thread(_settled, cluster, vhost, feeder)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{_whereabouts(procs, tmp)}") from None
            drained = time.monotonic() - started
            dead = _cli(tmp, config, urls, "dead", "list", "--json")
            status = _cli(tmp, config, urls, "status", "--json")
        finally:
            _stop(procs)
            await feeder.stop()
        expected = expected_keys(feeder.routes, KEY.encode(), feed)
    owed_missing = sorted({k for name, keys in expected.items() for k in keys - set(sims.states[name].messages)
                           if k not in refused_keys})
    if owed_missing:
        _explain(owed_missing[:12], store, audit)
    failover = (tmp / "logs" / f"{FAILING_OVER}.log").read_text(errors="replace")
    return {"run": run, "sims": sims, "expected": expected, "refused": refused, "refused_keys": refused_keys,
            "dead": dead, "status": status, "drained": drained, "active": active, "failover": failover}


@pytest.mark.timeout(600)  # five bus processes and three nodes on a small machine
def test_three_routers_and_two_deliverers_on_shared_state_survive_a_router_a_deliverer_and_a_node_killed(
        rabbitmq_cluster: Cluster, cluster_vhost: tuple[str, dict[str, str]], shared_store: tuple[str, str],
        tmp_path: Path) -> None:
    vhost, urls = cluster_vhost
    configure_logging("console", "warning", stream=sys.stderr)
    try:
        result = asyncio.run(_scenario(rabbitmq_cluster, vhost, urls, tmp_path, *shared_store))
    finally:
        structlog.reset_defaults()
    run: Run = result["run"]  # type: ignore[assignment]
    sims: SimulatorCluster = result["sims"]  # type: ignore[assignment]
    expected: dict[str, set[str]] = result["expected"]  # type: ignore[assignment]
    states = sims.states
    refused_keys: set[str] = result["refused_keys"]  # type: ignore[assignment]
    refused_changes = len(refused_keys)
    # the refused resident's zei changes: one dead letter, the rest held behind it
    owed = {name: keys - (refused_keys if name == "zei" else set()) for name, keys in expected.items()}
    total = sum(len(keys) for keys in owed.values())
    applied = sum(len(keys & set(states[name].messages)) for name, keys in owed.items())
    missing = sum(len(keys - set(states[name].messages)) for name, keys in owed.items())
    unexpected = sum(len(set(states[name].messages) - expected.get(name, set())) for name in ROUTED)
    duplicated = sum(states[name].effects - len(states[name].messages) for name in ROUTED)
    late = out_of_order(states[name] for name in ROUTED)
    print(f"\ncluster n-way: {ROUTERS} routers, {DELIVERERS} deliverers, {SHARDS} shards; killed "
          f"{', '.join(run.kills)}; drained {result['drained']:.1f} s after the feed began")
    print(f"cluster n-way: accepted {run.accepted}/{CHANGES} (submits retried {run.retried_submits}), expected "
          f"{total}, applied {applied}, missing {missing}, unexpected {unexpected}, duplicated {duplicated}, "
          f"out of order {late}; refused resident: {refused_changes} changes, {len(refused_keys)} at zei")

    active: dict[str, set[str]] = result["active"]  # type: ignore[assignment]
    for name, keys in owed.items():
        if keys - set(states[name].messages):
            print(f"cluster n-way: missing at {name}: {len(keys - set(states[name].messages))}")
    print(f"cluster n-way: active before the kills: router0 on {sorted(active['router0'])}, deliver0 on "
          f"{len(active['deliver0'])} shards")
    assert run.accepted == CHANGES
    assert len(run.kills) == 3
    assert any(q.startswith(f"{INTAKE_QUEUE}.shard") for q in active["router0"]), active
    assert any(q.startswith("renkei.dest.") for q in active["deliver0"]), active
    failover: str = result["failover"]  # type: ignore[assignment]
    assert failover.count("broker connection lost") == 1, f"{FAILING_OVER} lost its node once: {failover[-3000:]}"
    assert refused_changes >= 2 and refused_keys <= expected["zei"]  # every change goes to zei
    assert (applied, missing, unexpected, duplicated, late) == (total, 0, 0, 0, 0)

    dead: subprocess.CompletedProcess[str] = result["dead"]  # type: ignore[assignment]
    assert dead.returncode == 0, dead.stderr
    letters = json.loads(dead.stdout)
    assert [(d["destination"], d["subject"], d["code"]) for d in letters] == [("zei", result["refused"], "D100")]

    status: subprocess.CompletedProcess[str] = result["status"]  # type: ignore[assignment]
    report = json.loads(status.stdout)
    assert report["dead_letters"]["total"] == 1, report["dead_letters"]
    figures = {d["name"]: d for d in report["destinations"]}
    assert figures["zei"]["held_messages"] == refused_changes - 1
    # every router's counts, in one store: each destination routed at least what it was owed
    assert all(figures[name]["routed"] >= len(keys) for name, keys in expected.items()), figures
    assert status.returncode == 0, (report["unseen"], status.stderr)
