"""A poison message: the tax system's sink crashes (RuntimeError, a bug, not a refusal) on
every change of one resident. The bus runs in this process (a crashing sink cannot be put
into a `renkei run` without a tests-only adapter package) on the faults RabbitMQ node: the
head change goes through the delay tiers, is dead-lettered with D300 after `poison_after`
crashes, the resident's later changes are held, everyone else flows; once the bug is fixed a
replay delivers the resident's changes in order."""

from __future__ import annotations

from pathlib import Path

import pytest
from checker import Checker
from fault_support import PSEUDONYM_KEY, Feeder, changes, eventually

from adapters.simulators import SYSTEMS, SimulatorCluster
from adapters.transports.http import HttpSink
from bus.app import Bus
from bus.catalog import Catalog
from bus.delivery.dead import DeadLetters
from bus.delivery.policy import RetryPolicy
from bus.ports import Outbound, Receipt
from bus.settings import BusSettings, Settings

pytestmark = [pytest.mark.faults, pytest.mark.amqp]
POISON_AFTER = 3


class CrashingSink:
    """Delivers through `inner`, but crashes on every message of `subject` while `broken`."""

    def __init__(self, inner: HttpSink, subject: str) -> None:
        self.inner, self.subject = inner, subject
        self.broken = True
        self.crashes = 0

    async def deliver(self, message: Outbound) -> Receipt:
        if self.broken and message.envelope.subject == self.subject:
            self.crashes += 1
            raise RuntimeError("poison: this resident's record crashes the handler")
        return await self.inner.deliver(message)


async def test_a_poison_message_is_dead_lettered_d300_and_its_resident_held_until_replayed(
        tmp_path: Path, vhost_url: str, catalog: Catalog) -> None:
    items = changes(catalog, 300, seed=5)
    checker = Checker(catalog, PSEUDONYM_KEY.encode(), SYSTEMS)
    counts: dict[str, int] = {}
    for _, record in items:
        counts[checker.subject(record)] = counts.get(checker.subject(record), 0) + 1
    subject = max(counts, key=lambda s: counts[s])
    assert counts[subject] >= 3
    settings = Settings(bus=BusSettings(state_dir=tmp_path / "state", broker_url=vhost_url,
                                        pseudonym_key=PSEUDONYM_KEY.encode()),
                        retry=RetryPolicy(attempts=2, backoff=0.05, tiers=(0.2, 0.5, 1.0), deadline=600,
                                          poison_after=POISON_AFTER))
    async with SimulatorCluster(catalog=catalog, store=str(tmp_path / "received")) as sims:
        http = {name: HttpSink(sims.messages_url(name), name=name) for name in SYSTEMS}
        crashing = CrashingSink(http["zei"], subject)
        bus = Bus(settings, sinks={**http, "zei": crashing}, catalog=catalog)
        await bus.start()
        try:
            async def submit(body: bytes) -> object:
                return await bus.intake.submit(body, content_type="application/xml", source="jumin")

            feeder = Feeder("in-process", items, rate=100.0, submit=submit)
            await feeder.run()
            others = checker.expected(r for r in feeder.accepted if checker.subject(r) != subject)
            await eventually(lambda: checker.missing(others, sims.states) == 0, "everyone else delivered")
            await eventually(lambda: bool(bus.deliveries.dead_list()), "the poison message dead-lettered")
            letters = bus.deliveries.dead_list()
            assert [(d.destination, d.code, d.subject) for d in letters] == [("zei", "D300", subject)]
            assert crashing.crashes == POISON_AFTER
            await eventually(lambda: bus.deliveries.held_counts().get("zei", (0, 0))[1] == counts[subject] - 1,
                             "the resident's later changes held")
            assert not [m for m in sims.state("zei").messages.values() if m.subject == subject]
            crashing.broken = False  # the bug is fixed
            await DeadLetters(bus.deliveries, bus.broker, bus.catalog).replay(letters[0].id, by="faults-test")
            expected = checker.expected(feeder.accepted)
            await eventually(lambda: checker.missing(expected, sims.states) == 0, "the resident released")
            assert await bus.wait_idle(within=30)
            parked = len(bus.deliveries.parked_all())
        finally:
            await bus.stop()
            for sink in http.values():
                await sink.aclose()
        report = checker.check("poison message (handler crashes every time)", feeder.accepted, sims.states,
                               expected=expected, parked=parked, refused=len(feeder.refused),
                               crashes=crashing.crashes, dead_letters=len(letters), held=counts[subject] - 1)
    assert report.ok, report.line()
