"""Shared by the unit tests of the pipeline's stages: a broker that takes every publish, and a
change as intake puts it on the intake queue."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bus.audit import AuditRecorder
from bus.audit.hooks import AuditHooks
from bus.brokers.base import Delivery, OutgoingMessage
from bus.catalog import Catalog
from bus.delivery.store import DeliveryStore
from bus.masking import Pseudonymizer
from bus.paths import routes_dir
from bus.routing.router import RouteTable
from bus.stages import Dispatcher, IntakeStage, ResidentLine, RouteStage, StageHooks
from bus.state import StateStore
from bus.synthetic.samples import sample_records
from bus.topology import ROUTE_STAGE

KEY = b"unit-test-pseudonym-key-000001"


class CapturingBroker:
    """Takes every publish at once (a broker is not what these tests are about); `calls`
    counts the publish_many calls (a batch's publishes share one)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, OutgoingMessage]] = []
        self.calls = 0

    async def publish(self, queue: str, message: OutgoingMessage, *, delay: float = 0.0) -> None:
        await self.publish_many([(queue, message)], delay=delay)

    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]], *, delay: float = 0.0) -> None:
        self.calls += 1
        self.published.extend(items)


def intake_of(catalog: Catalog, tmp_path: Path, recorder: AuditRecorder | None = None
              ) -> tuple[IntakeStage, CapturingBroker, bytes]:
    """An intake publishing to a CapturingBroker, and one valid jumin.idou change (XML)."""
    record = next(iter(sample_records("jumin.idou", catalog, seed=4, n=1)))
    broker = CapturingBroker()
    intake = IntakeStage(broker, catalog, StateStore(tmp_path / "intake-state.sqlite"),  # type: ignore[arg-type]
                         Pseudonymizer(KEY), hooks=AuditHooks(recorder) if recorder else None)
    return intake, broker, catalog.get("jumin.idou").to_xml(record)


async def accepted_delivery(catalog: Catalog, tmp_path: Path) -> Delivery:
    """The change as the router receives it from the intake queue."""
    intake, broker, body = intake_of(catalog, tmp_path)
    await intake.submit(body, content_type="application/xml", source="jumin")
    [(_, message)] = broker.published
    return Delivery(message.body, message.message_id, message.key, dict(message.headers))


def route_stage(broker: CapturingBroker, catalog: Catalog, tmp_path: Path, *, hooks: StageHooks | None = None,
                retry_for: float = 10.0, poison_after: int = 5) -> tuple[RouteStage, Dispatcher]:
    """The route stage over the shipped routes, and the dispatcher the broker would call."""
    hooks = hooks or StageHooks()
    line = ResidentLine(DeliveryStore(tmp_path / "delivery.sqlite"), ROUTE_STAGE, hooks)
    stage = RouteStage(broker, catalog, RouteTable.load(routes_dir(), catalog),  # type: ignore[arg-type]
                       StateStore(tmp_path / "state.sqlite"), line, hooks=hooks, publish_retry_for=retry_for)
    return stage, Dispatcher(stage, hooks, line, poison_after=poison_after)
