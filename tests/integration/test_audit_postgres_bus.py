"""The bus writing its audit trail to PostgreSQL (several workers share one trail there):
two bus processes' worth of stages — two `Bus` instances on one embedded broker file, one
routing, one delivering — append to one PostgreSQL chain at once, and the chain verifies
with every message's life complete."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from run_support import changes

from bus.app import Bus, BusParts
from bus.audit import open_store, verify
from bus.catalog import Catalog
from bus.ports import FunctionSink, Receipt
from bus.settings import AuditSettings, BusSettings, Settings

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def test_two_bus_workers_share_one_postgres_trail_that_verifies(tmp_path: Path, postgres_url: str) -> None:
    catalog = Catalog.load()
    store_url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema=bus_{uuid.uuid4().hex[:8]}"
    settings = Settings(bus=BusSettings(state_dir=tmp_path / "var"), audit=AuditSettings(store=store_url))
    applied: list[str] = []
    sink = FunctionSink(lambda m: applied.append(m.envelope.message_id) or Receipt.applied(m))  # type: ignore[func-returns-value]
    router = Bus(settings, catalog=catalog)
    deliverer = Bus(replace(settings), sinks={"zei": sink}, catalog=catalog)
    feed = changes(catalog, 40, seed=41)
    try:
        await deliverer.start(BusParts(router=False))
        await router.start(BusParts(deliverers=False))
        for body, _ in feed:
            assert (await router.intake.submit(body, content_type="application/xml", source="jumin")).status \
                == "accepted"
        assert await router.wait_idle(within=60) and await deliverer.wait_idle(within=60)
    finally:
        await router.stop()
        await deliverer.stop()
    assert len(applied) == len(feed)
    store = open_store(store_url)
    try:
        report = verify(store)
        assert report.ok, report
        lives: dict[str, list[str]] = {}
        for record in store.records():
            if record.event.message_id:
                lives.setdefault(record.event.message_id, []).append(record.event.event.value)
    finally:
        store.close()
    for message_id in applied:  # the zei projection's id is the change's id
        assert {"received", "accepted", "routed", "delivered"} <= set(lives[message_id]), lives[message_id]
    assert report.records >= 4 * len(feed)


