"""Delivery survives failure, on a real RabbitMQ (DESIGN §5): while a steady stream of
resident changes flows through `renkei run` workers, a fault is injected; afterwards every
accepted change reached exactly the systems its routes name — nothing lost, no effect
twice, nothing unexpected, each resident's changes in order (tests/faults/checker.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from checker import Report
from fault_support import CuttableProxy, FaultsNode, Scenario, at, eventually, renkei

from bus.catalog import Catalog

pytestmark = [pytest.mark.faults, pytest.mark.amqp]


def _clean(scenario: Scenario, report: Report) -> None:
    assert report.ok, report.line() + "\n" + scenario.logs()[-6000:]


async def test_kill_9_of_a_bus_worker_loses_nothing_and_applies_nothing_twice(
        tmp_path: Path, vhost_url: str, catalog: Catalog) -> None:
    """The delivery worker, then the intake/router worker, is killed -9 mid-stream and
    started again: the feeder resends what the dead intake did not answer."""
    async with Scenario(tmp_path, "kill -9 of a bus worker", catalog, broker_url=vhost_url, n=500) as sc:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sc.feed()
        await at(2.5, t0)
        sc.workers["deliver"].kill9()
        await sc.workers["deliver"].start()
        await at(6.0, t0)
        sc.workers["router"].kill9()
        await sc.workers["router"].start()
        report = await sc.settle(kills=2)
    _clean(sc, report)


async def test_kill_9_of_the_broker_then_a_restart_loses_nothing(
        tmp_path: Path, vhost_url: str, catalog: Catalog, faults_node: FaultsNode) -> None:
    """The broker's VM is killed -9 mid-stream and started again on its data: the workers
    reconnect (robust connection), the intake answers 503 meanwhile and the feeder resends."""
    async with Scenario(tmp_path, "kill -9 of the broker, then restart", catalog, broker_url=vhost_url,
                        n=400) as sc:
        t0 = asyncio.get_running_loop().time()
        sc.feed()
        await at(3.0, t0)
        await asyncio.to_thread(faults_node.kill)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(faults_node.start_keeping_data)
        report = await sc.settle(within=180)
    _clean(sc, report)


async def test_a_graceful_broker_restart_loses_nothing(
        tmp_path: Path, vhost_url: str, catalog: Catalog, faults_node: FaultsNode) -> None:
    async with Scenario(tmp_path, "graceful broker restart", catalog, broker_url=vhost_url, n=400) as sc:
        t0 = asyncio.get_running_loop().time()
        sc.feed()
        await at(3.0, t0)
        await asyncio.to_thread(faults_node.restart)
        report = await sc.settle(within=180)
    _clean(sc, report)


async def test_the_network_to_the_broker_cut_and_restored_loses_nothing(
        tmp_path: Path, vhost_url: str, catalog: Catalog) -> None:
    """Every connection through the proxy is dropped and new ones are refused for 4 s."""
    parts = urlsplit(vhost_url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    port = await proxy.start()
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{port}"))
    try:
        async with Scenario(tmp_path, "network cut and restored", catalog, broker_url=via_proxy, n=500) as sc:
            t0 = asyncio.get_running_loop().time()
            sc.feed()
            await at(3.0, t0)
            before = proxy.connections
            await proxy.cut()
            await asyncio.sleep(4.0)
            await proxy.restore()
            report = await sc.settle(proxy_connections=proxy.connections - before)
    finally:
        await proxy.stop()
    _clean(sc, report)


async def test_a_destination_answering_503_for_a_while_gets_everything_once_it_recovers(
        tmp_path: Path, vhost_url: str, catalog: Catalog) -> None:
    async with Scenario(tmp_path, "destination 503 then recovering", catalog, broker_url=vhost_url, n=500) as sc:
        t0 = asyncio.get_running_loop().time()
        sc.feed()
        await at(2.0, t0)
        for system in ("zei", "kokuho"):
            sc.state(system).control(mode="fail", fail_status=503)
        await asyncio.sleep(4.0)
        failed = sc.state("zei").failed + sc.state("kokuho").failed
        for system in ("zei", "kokuho"):
            sc.state(system).control(mode="ok")
        report = await sc.settle(answered_503=failed)
    _clean(sc, report)
    assert failed > 0


async def test_a_resident_refused_for_good_is_held_while_others_flow_and_a_replay_releases_it_in_order(
        tmp_path: Path, vhost_url: str, catalog: Catalog) -> None:
    """The tax system rejects (422) every change of one resident: the first is dead-lettered
    (D100), the later ones are held, everyone else flows; after the fix, `renkei dead replay`
    delivers the resident's changes in order."""
    async with Scenario(tmp_path, "permanent rejection of one resident, then replay", catalog,
                        broker_url=vhost_url, n=500) as sc:
        records = [record for _, record in sc.items]
        by_subject: dict[str, int] = {}
        for record in records:
            by_subject[sc.checker.subject(record)] = by_subject.get(sc.checker.subject(record), 0) + 1
        subject = max(by_subject, key=lambda s: by_subject[s])
        assert by_subject[subject] >= 4
        zei = sc.state("zei")
        zei.control(mode="reject", reject_subject=subject)
        sc.feed()
        await asyncio.wait_for(sc._feeding, 120)  # type: ignore[arg-type]
        others = sc.checker.expected(r for r in sc.feeder.accepted if sc.checker.subject(r) != subject)
        await eventually(lambda: sc.checker.missing(others, sc.sims.states) == 0, "everyone else delivered")
        assert not [m for m in zei.messages.values() if m.subject == subject]  # held, not delivered
        assert zei.rejected == 1  # only the head was tried
        letters = json.loads(await renkei(sc.config, "dead", "list", "--json"))
        assert [(d["destination"], d["code"]) for d in letters] == [("zei", "D100")]
        status = json.loads(await renkei(sc.config, "status", "--json"))
        zei.control(mode="ok")  # the receiving system fixed its data
        await renkei(sc.config, "dead", "replay", str(letters[0]["id"]), "--operator", "faults-test")
        report = await sc.settle(held=by_subject[subject] - 1, dead_letters=len(letters))
    _clean(sc, report)
    assert "destinations" in status


async def _queue_depth(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


RSS_GROWTH_MB = 40  # what the delivery worker may grow by while thousands of messages wait


async def test_a_slow_destination_makes_messages_wait_in_the_broker_not_in_the_worker(
        tmp_path: Path, vhost_url: str, catalog: Catalog) -> None:
    """The tax system takes 0.5 s per message; a burst of 2000 changes waits in its queue
    at RabbitMQ (prefetch bounds what the worker holds), and the worker's memory stays flat."""
    async with Scenario(tmp_path, "slow destination", catalog, broker_url=vhost_url, n=2000, rate=None,
                        systems=("zei", "kokuho")) as sc:
        worker = sc.workers["deliver"]
        baseline = worker.rss_mb()
        sc.state("zei").control(mode="slow", delay=0.5)
        sc.feed()
        peak_rss, peak_depth = baseline, 0
        while not sc.feeder.done.is_set():
            await asyncio.sleep(0.5)
            peak_rss = max(peak_rss, worker.rss_mb())
            peak_depth = max(peak_depth, await _queue_depth(vhost_url, "renkei.dest.zei"))
        for _ in range(4):
            await asyncio.sleep(0.5)
            peak_rss = max(peak_rss, worker.rss_mb())
        sc.state("zei").control(mode="ok")
        report = await sc.settle(rss_baseline_mb=round(baseline), rss_peak_mb=round(peak_rss),
                                 zei_queue_peak=peak_depth)
    _clean(sc, report)
    assert peak_depth >= 1000, f"only {peak_depth} messages waited in the broker"
    assert peak_rss - baseline < RSS_GROWTH_MB, f"the worker grew from {baseline:.0f} to {peak_rss:.0f} MB"


async def test_memory_and_disk_alarms_block_publishers_and_everything_flows_after_they_clear(
        tmp_path: Path, vhost_url: str, catalog: Catalog, faults_node: FaultsNode) -> None:
    async with Scenario(tmp_path, "memory alarm and disk alarm", catalog, broker_url=vhost_url, n=600) as sc:
        t0 = asyncio.get_running_loop().time()
        sc.feed()
        await at(2.0, t0)
        windows = []
        for raise_, clear in ((("set_vm_memory_high_watermark", "0.0000001"), ("set_vm_memory_high_watermark", "0.4")),
                              (("set_disk_free_limit", "100000GB"), ("set_disk_free_limit", "50MB"))):
            await asyncio.to_thread(faults_node.ctl, *raise_)
            started = asyncio.get_running_loop().time()
            accepted_before = len(sc.feeder.accepted)
            await asyncio.sleep(3.0)
            windows.append(len(sc.feeder.accepted) - accepted_before)
            await asyncio.to_thread(faults_node.ctl, *clear)
            await asyncio.sleep(2.0)
            del started
        report = await sc.settle(accepted_in_memory_alarm=windows[0], accepted_in_disk_alarm=windows[1])
    _clean(sc, report)
    assert windows[0] <= 16 and windows[1] <= 16, f"publishers were not blocked: {windows}"
