"""The intake's batch form: each message answered for itself, the new ones published in one
confirmed call in the batch's order, a change twice in a batch a duplicate of its first."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline_support import KEY, CapturingBroker

from bus.brokers.base import OutgoingMessage
from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.stages import IntakeStage
from bus.stages.hooks import CountingHooks
from bus.stages.intake import RawMessage
from bus.state import StateStore
from bus.synthetic.samples import sample_records


class CountingBroker(CapturingBroker):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]], *, delay: float = 0.0) -> None:
        self.calls += 1
        await super().publish_many(items, delay=delay)


async def test_a_batch_is_answered_per_message_and_published_in_one_call_in_order(tmp_path: Path) -> None:
    catalog = Catalog.load()
    ks = catalog.get("jumin.idou")
    bodies = [ks.to_xml(r) for r in sample_records("jumin.idou", catalog, seed=9, n=5)]
    broker = CountingBroker()
    state = StateStore(tmp_path / "state.sqlite")
    intake = IntakeStage(broker, catalog, state, Pseudonymizer(KEY), hooks=CountingHooks(state))  # type: ignore[arg-type]
    first = await intake.submit(bodies[0], content_type="application/xml", source="jumin")
    batch = [RawMessage(b, "application/xml", "jumin", "jumin.idou")
             for b in (bodies[0], bodies[1], b"<not-xml", bodies[2], bodies[1], bodies[3], bodies[4])]
    calls_before = broker.calls
    answers = await intake.submit_many(batch)
    assert [a.status for a in answers] == ["duplicate", "accepted", "rejected", "accepted", "duplicate",
                                           "accepted", "accepted"]
    assert answers[0].message_id == first.message_id and answers[4].message_id == answers[1].message_id
    assert broker.calls - calls_before == 1  # one confirmed publish for the batch
    published = [m.message_id for _, m in broker.published[1:]]
    assert published == [answers[i].message_id for i in (1, 3, 5, 6)]  # the batch's order
    assert all(state.is_seen(answers[i].message_id or "") for i in (1, 3, 5, 6))
    await intake._hooks.written()
    state.close()
