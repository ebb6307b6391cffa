"""The router retries a publish the broker did not take, in place, before it gives the change
back to the broker: a requeued change may be overtaken by the resident's next one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from pipeline_support import CapturingBroker, accepted_delivery, route_stage

from bus.brokers.base import OutgoingMessage
from bus.catalog import Catalog
from bus.errors import BrokerUnavailable, PublishNotConfirmed
from bus.stages import RouteStage
from bus.state import StateStore


class FlakyBroker(CapturingBroker):
    """Refuses the first `failures` publishes with the given errors, then takes them."""

    def __init__(self, *errors: Exception) -> None:
        super().__init__()
        self.errors = list(errors)

    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]], *, delay: float = 0.0) -> None:
        if self.errors:
            self.calls += 1  # a refused call counts too (a taken one: CapturingBroker counts it)
            raise self.errors.pop(0)
        await super().publish_many(items, delay=delay)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def _router(broker: CapturingBroker, catalog: Catalog, tmp_path: Path, retry_for: float = 10.0) -> RouteStage:
    return route_stage(broker, catalog, tmp_path, retry_for=retry_for)[0]


async def test_a_broker_that_comes_back_is_published_to_in_place(catalog: Catalog, tmp_path: Path) -> None:
    broker = FlakyBroker(BrokerUnavailable("reconnecting"), PublishNotConfirmed("not confirmed in time"))
    router = _router(broker, catalog, tmp_path)
    delivery = await accepted_delivery(catalog, tmp_path)
    await router.handle([delivery])  # returns: acked, never requeued
    assert broker.calls == 3 and broker.published
    destinations = {q for q, _ in broker.published}
    assert len(destinations) == len(broker.published)  # each destination once: the failed tries sent nothing


async def test_a_broker_that_stays_away_gives_the_change_back_unrouted(catalog: Catalog, tmp_path: Path) -> None:
    broker = FlakyBroker(*[BrokerUnavailable("down")] * 1000)
    state_router = _router(broker, catalog, tmp_path, retry_for=0.5)
    delivery = await accepted_delivery(catalog, tmp_path)
    with pytest.raises(BrokerUnavailable):
        await state_router.handle([delivery])
    assert broker.calls > 1
    assert not StateStore(tmp_path / "state.sqlite").is_routed(delivery.message_id)  # it will be routed again


async def test_other_errors_are_not_retried(catalog: Catalog, tmp_path: Path) -> None:
    broker = FlakyBroker(RuntimeError("a bug"))
    with pytest.raises(RuntimeError):
        await _router(broker, catalog, tmp_path).handle([await accepted_delivery(catalog, tmp_path)])
    assert broker.calls == 1
