"""Shared by the unit tests of the pipeline's stages: a broker that takes every publish, and a
change as intake puts it on the intake queue."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bus.audit import AuditRecorder
from bus.brokers.base import Delivery, OutgoingMessage
from bus.catalog import Catalog
from bus.intake import BusIntake
from bus.masking import Pseudonymizer
from bus.state import StateStore
from bus.synthetic.samples import sample_records

KEY = b"unit-test-pseudonym-key-000001"


class CapturingBroker:
    """Takes every publish at once (a broker is not what these tests are about)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, OutgoingMessage]] = []

    async def publish(self, queue: str, message: OutgoingMessage, *, delay: float = 0.0) -> None:
        await self.publish_many([(queue, message)], delay=delay)

    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]], *, delay: float = 0.0) -> None:
        self.published.extend(items)


def intake_of(catalog: Catalog, tmp_path: Path, recorder: AuditRecorder | None = None
              ) -> tuple[BusIntake, CapturingBroker, bytes]:
    """An intake publishing to a CapturingBroker, and one valid jumin.idou change (XML)."""
    record = next(iter(sample_records("jumin.idou", catalog, seed=4, n=1)))
    broker = CapturingBroker()
    intake = BusIntake(broker, catalog, StateStore(tmp_path / "intake-state.sqlite"),  # type: ignore[arg-type]
                       Pseudonymizer(KEY), recorder=recorder)
    return intake, broker, catalog.get("jumin.idou").to_xml(record)


async def accepted_delivery(catalog: Catalog, tmp_path: Path) -> Delivery:
    """The change as the router receives it from the intake queue."""
    intake, broker, body = intake_of(catalog, tmp_path)
    await intake.submit(body, content_type="application/xml", source="jumin")
    [(_, message)] = broker.published
    return Delivery(message.body, message.message_id, message.key, dict(message.headers))
