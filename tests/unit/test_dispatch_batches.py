"""The dispatcher runs a stage on a batch of deliveries: one publish and one `written()` for the
batch, and a change that crashes the stage fails alone (the batch is run again one by one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_support import KEY, CapturingBroker, route_stage

from bus.brokers.base import Delivery
from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.stages import IntakeStage, StageHooks
from bus.state import StateStore
from bus.synthetic.samples import sample_records
from bus.topology import ROUTE_STAGE


class CountingWrites(StageHooks):
    def __init__(self) -> None:
        self.writes = 0

    async def written(self) -> None:
        self.writes += 1


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


async def accepted(catalog: Catalog, tmp_path: Path, n: int) -> list[Delivery]:
    """`n` changes of different residents as the router receives them from the intake queue."""
    broker = CapturingBroker()
    intake = IntakeStage(broker, catalog, StateStore(tmp_path / "intake.sqlite"), Pseudonymizer(KEY))  # type: ignore[arg-type]
    ks = catalog.get("jumin.idou")
    residents: set[str] = set()
    for record in sample_records("jumin.idou", catalog, seed=7, n=10 * n):
        if record["address_number"] not in residents and len(residents) < n:
            residents.add(record["address_number"])
            assert (await intake.submit(ks.to_xml(record), content_type="application/xml",
                                        source="jumin")).status == "accepted"
    return [Delivery(m.body, m.message_id, m.key, dict(m.headers)) for _, m in broker.published]


async def test_a_batch_is_routed_in_one_publish_and_its_events_are_written_once(
        catalog: Catalog, tmp_path: Path) -> None:
    batch = await accepted(catalog, tmp_path, 5)
    assert len({d.key for d in batch}) == 5
    broker, hooks = CapturingBroker(), CountingWrites()
    _, dispatcher = route_stage(broker, catalog, tmp_path, hooks=hooks)
    assert await dispatcher.handle(batch) == [True] * 5
    assert broker.calls == 1 and len(broker.published) >= 5  # every projection of the batch at once
    # once for the batch, not per change: by the stage before it records the changes routed, and by
    # the dispatcher before the ack (nothing is left to write by then)
    assert hooks.writes == 2
    assert {m.key for _, m in broker.published} == {d.key for d in batch}
    assert await dispatcher.handle(batch) == [True] * 5  # a redelivered batch is a duplicate
    assert broker.calls == 1


async def test_a_change_that_crashes_a_batch_fails_alone_and_the_rest_is_routed(
        catalog: Catalog, tmp_path: Path) -> None:
    first, second, third = await accepted(catalog, tmp_path, 3)
    poison = Delivery(b"<not-xml", second.message_id, second.key, dict(second.headers))
    broker = CapturingBroker()
    stage, dispatcher = route_stage(broker, catalog, tmp_path, poison_after=2)
    assert await dispatcher.handle([first, poison, third]) == [True, False, True]  # the poison requeued
    assert {m.key for _, m in broker.published} == {first.key, third.key}
    poison.delivery_count = 2
    assert await dispatcher.handle([poison]) == [True]  # dead-lettered at the limit, then acked
    [letter] = stage.line.store.dead_list()
    assert (letter.destination, letter.code, letter.message_id) == (ROUTE_STAGE, "D300", second.message_id)


def test_the_batch_size_is_read_from_the_bus_section_and_a_bad_one_names_its_line(tmp_path: Path) -> None:
    from bus.errors import ConfigError
    from bus.settings import Settings

    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nbatch_size = 16\nbatch_linger_ms = 2\n', encoding="utf-8")
    batching = Settings.load(config, env={}).batching
    assert (batching.batch_size, batching.linger_ms) == (16, 2)
    assert Settings.load(config, env={"RENKEI_BATCH_SIZE": "1"}).batching.batch_size == 1
    config.write_text('[bus]\nbatch_size = 0\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"batch_size") as info:
        Settings.load(config, env={})
    assert f"{config}:2" in str(info.value)
