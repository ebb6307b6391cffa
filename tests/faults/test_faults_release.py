"""kill -9 in the middle of a release (embedded broker, `renkei run`): a resident's first change
is refused by the tax system and dead-lettered, its later changes are held; the operator
replays it while the system answers slowly, and the bus is killed after the head was delivered,
while the held changes are being released. After the restart the release is finished and the
broker hands the replayed head out again: it must not be delivered after the later changes
(the audit trail's `delivered` events of the resident are in 履歴番号 order)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from fault_support import Scenario, eventually, renkei

from bus.audit import EventType, open_store
from bus.catalog import Catalog
from bus.delivery.store import DeliveryStore

pytestmark = pytest.mark.faults


async def test_kill_9_during_a_release_never_delivers_the_head_again_after_the_later_changes(
        tmp_path: Path, catalog: Catalog) -> None:
    async with Scenario(tmp_path, "embedded broker, kill -9 during a release", catalog, broker_url=None,
                        systems=("zei",), roles=("all",), n=80, rate=100.0) as sc:
        counts = Counter(sc.checker.subject(record) for _, record in sc.items)
        subject, changes = counts.most_common(1)[0]
        assert changes >= 3
        zei = sc.state("zei")
        zei.control(mode="reject", reject_subject=subject)  # the resident's first change: refused (D100)
        await sc.feed()
        deliveries = DeliveryStore(tmp_path / "var" / "delivery.sqlite")
        try:
            await eventually(lambda: len(deliveries.dead_list()) == 1, "the first change dead-lettered")
            await eventually(lambda: deliveries.held_counts().get("zei", (0, 0))[1] >= 2,
                             "the resident's later changes held")
            await asyncio.sleep(2.0)  # the last of them held too
            held = deliveries.held_counts()["zei"][1]
            [letter] = deliveries.dead_list()
        finally:
            deliveries.close()
        zei.control(mode="slow", delay=1.5)
        await renkei(sc.config, "dead", "replay", str(letter.id), "--operator", "faults-test")
        await eventually(lambda: any(m.subject == subject for m in zei.messages.values()),
                         "the replayed head delivered", within=30)
        await asyncio.sleep(0.5)  # the first held change is at the receiver now, the head still unacked
        sc.workers["all"].kill9()
        zei.control(mode="ok")
        await sc.workers["all"].start()
        report = await sc.settle(kills=1)
    assert report.ok, report.line() + "\n" + sc.logs()[-6000:]
    with open_store(tmp_path / "var" / "audit.sqlite") as store:
        delivered = [r.event.sequence for r in store.by_subjects([subject], events=(EventType.DELIVERED,))
                     if r.event.destination == "zei"]
    assert len(set(delivered)) == held + 1
    assert delivered == sorted(delivered), f"an earlier change delivered after a later one: {delivered}"
