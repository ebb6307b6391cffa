"""Every stage's audit events are in the trail before it lets the message go (the router's and
the deliverer's ack, intake's answer to the source), so a crash right after loses none.

The recorder here would wait a minute before writing on its own: only the stages' flush can
have put the events in the store by the time they return."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import CapturingBroker, accepted_delivery, intake_of, route_stage

from bus.audit import AuditLog, AuditRecorder, open_store
from bus.audit.fanout import split_records
from bus.audit.hooks import AuditHooks
from bus.brokers.base import Delivery, OutgoingMessage
from bus.catalog import Catalog
from bus.delivery import DeliveryStore
from bus.envelope import Envelope
from bus.errors import PermanentError
from bus.ports import Outbound, Receipt
from bus.stages import DeliverStage, Dispatcher, ResidentLine


class AppliedSink:
    async def deliver(self, message: Outbound) -> Receipt:
        return Receipt.applied(message)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture
async def trail(tmp_path: Path) -> AsyncIterator[tuple[AuditLog, AuditRecorder]]:
    log = AuditLog(open_store(tmp_path / "audit.sqlite"))
    recorder = AuditRecorder(log, max_delay=60.0)
    yield log, recorder
    await recorder.aclose()
    log.close()


def _written(log: AuditLog) -> list[str]:
    """The events written, a joined `routed` record as one per destination (bus.audit.fanout)."""
    return [str(r.event.event) for r in split_records(log.store.records())]


async def test_intake_answers_only_after_the_events_of_the_submit_are_written(
        catalog: Catalog, tmp_path: Path, trail: tuple[AuditLog, AuditRecorder]) -> None:
    log, recorder = trail
    intake, _, body = intake_of(catalog, tmp_path, recorder)
    assert (await intake.submit(body, content_type="application/xml", source="jumin")).status == "accepted"
    assert _written(log) == ["received", "accepted"]
    assert (await intake.submit(body, content_type="application/xml", source="jumin")).status == "duplicate"
    assert _written(log) == ["received", "accepted", "received", "duplicate"]
    assert (await intake.submit(b"<broken", content_type="application/xml", source="jumin")).status == "rejected"
    assert _written(log)[-1] == "rejected"


async def test_the_router_returns_to_the_ack_only_after_its_routed_events_are_written(
        catalog: Catalog, tmp_path: Path, trail: tuple[AuditLog, AuditRecorder]) -> None:
    log, recorder = trail
    broker = CapturingBroker()
    _, router = route_stage(broker, catalog, tmp_path, hooks=AuditHooks(recorder))
    await router(await accepted_delivery(catalog, tmp_path))
    assert broker.published, "the change reaches some destination"
    assert _written(log) == ["routed"] * len(broker.published)


async def test_the_routed_events_are_written_before_the_change_is_recorded_routed(
        catalog: Catalog, tmp_path: Path, trail: tuple[AuditLog, AuditRecorder]) -> None:
    """Killed between the two, the redelivered change would be dropped as already routed and its
    `routed` records never written: a change delivered with no routing in its life. So the events
    go first (killed then, it is routed again and its records are there twice: the allowed side)."""
    log, recorder = trail
    broker = CapturingBroker()
    stage, router = route_stage(broker, catalog, tmp_path, hooks=AuditHooks(recorder))
    written_when_recorded: list[list[str]] = []
    record = stage._state.record_routed_many

    def watched(routed: Any) -> None:
        written_when_recorded.append(_written(log))
        record(routed)

    stage._state.record_routed_many = watched  # type: ignore[method-assign]
    await router(await accepted_delivery(catalog, tmp_path))
    assert broker.published
    assert written_when_recorded == [["routed"] * len(broker.published)]


async def _a_projection(catalog: Catalog, tmp_path: Path) -> tuple[OutgoingMessage, str]:
    """One projection of an accepted change, as the router published it, and its destination."""
    routed = CapturingBroker()
    _, router = route_stage(routed, catalog, tmp_path)
    await router(await accepted_delivery(catalog, tmp_path))
    _, projection = routed.published[0]
    destination = Envelope.from_headers(projection.headers).destination
    assert destination is not None
    return projection, destination


async def test_the_deliverer_returns_to_the_ack_only_after_its_delivered_event_is_written(
        catalog: Catalog, tmp_path: Path, trail: tuple[AuditLog, AuditRecorder]) -> None:
    log, recorder = trail
    projection, destination = await _a_projection(catalog, tmp_path)
    hooks = AuditHooks(recorder)
    line = ResidentLine(DeliveryStore(tmp_path / "delivery.sqlite"), destination, hooks)
    deliverer = DeliverStage(CapturingBroker(), catalog, line, AppliedSink(), hooks=hooks)  # type: ignore[arg-type]
    dispatcher = Dispatcher(deliverer, hooks, line, poison_after=5)
    await dispatcher(Delivery(projection.body, projection.message_id, projection.key, dict(projection.headers)))
    assert _written(log) == ["delivered"]


class RefusingSink:
    async def deliver(self, message: Outbound) -> Receipt:
        raise PermanentError("refused for good (a test)")


async def test_a_dead_letter_is_written_to_the_trail_before_it_is_stored(
        catalog: Catalog, tmp_path: Path, trail: tuple[AuditLog, AuditRecorder]) -> None:
    """A dead letter handed out again (killed after the letter, before the ack) is left to the
    operator without a second report, so its `dead_lettered` event must be in the trail before
    the letter is stored."""
    log, recorder = trail
    projection, destination = await _a_projection(catalog, tmp_path)
    hooks = AuditHooks(recorder)
    store = DeliveryStore(tmp_path / "delivery.sqlite")
    written_when_stored: list[list[str]] = []
    add_dead = store.add_dead

    def watched(**letter: Any) -> Any:
        written_when_stored.append(_written(log))
        return add_dead(**letter)

    store.add_dead = watched  # type: ignore[method-assign]
    line = ResidentLine(store, destination, hooks)
    deliverer = DeliverStage(CapturingBroker(), catalog, line, RefusingSink(), hooks=hooks)  # type: ignore[arg-type]
    dispatcher = Dispatcher(deliverer, hooks, line, poison_after=5)
    await dispatcher(Delivery(projection.body, projection.message_id, projection.key, dict(projection.headers)))
    assert written_when_stored == [["dead_lettered"]]
    assert [letter.message_id for letter in store.dead_list()] == [Envelope.from_headers(projection.headers).message_id]
