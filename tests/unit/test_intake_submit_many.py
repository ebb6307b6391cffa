"""The intake's batch form: each message answered for itself, the new ones published in one
confirmed call in the batch's order, a change twice in a batch a duplicate of its first."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from pipeline_support import KEY, CapturingBroker

from bus.audit.backends import open_store
from bus.audit.hooks import AuditHooks
from bus.audit.log import AuditLog
from bus.audit.recorder import AuditRecorder
from bus.brokers.base import OutgoingMessage
from bus.catalog import Catalog
from bus.errors import BrokerUnavailable
from bus.masking import Pseudonymizer
from bus.ports import Submission
from bus.stages import IntakeStage
from bus.stages.hooks import CountingHooks
from bus.stages.intake import RawMessage
from bus.state import StateStore
from bus.synthetic.samples import sample_records


async def test_a_batch_is_answered_per_message_and_published_in_one_call_in_order(tmp_path: Path) -> None:
    catalog = Catalog.load()
    ks = catalog.get("jumin.idou")
    bodies = [ks.to_xml(r) for r in sample_records("jumin.idou", catalog, seed=9, n=5)]
    broker = CapturingBroker()
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


class SlowBroker(CapturingBroker):
    """Each publish takes a moment (a confirm, an fsync), failing while `down`."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []
        self.down = False

    async def publish_many(self, items: Sequence[tuple[str, OutgoingMessage]], *, delay: float = 0.0) -> None:
        self.sizes.append(len(items))
        await asyncio.sleep(0.01)
        if self.down:
            raise BrokerUnavailable("the broker is down")
        await super().publish_many(items, delay=delay)


async def test_concurrent_submits_are_published_together_and_each_hears_its_own_answer(tmp_path: Path) -> None:
    """Eight sources submitting at once (the HTTP intake's requests, the demo's feeders): their
    valid changes share confirmed publishes (not one each), in the order they came, each caller
    answered for its own change (accepted, duplicate, rejected); every event is kept first."""
    catalog = Catalog.load()
    ks = catalog.get("jumin.idou")
    bodies = [ks.to_xml(r) for r in sample_records("jumin.idou", catalog, seed=11, n=24)]
    broker = SlowBroker()
    state = StateStore(tmp_path / "state.sqlite")
    recorder = AuditRecorder(AuditLog(open_store(tmp_path / "audit.sqlite")))
    intake = IntakeStage(broker, catalog, state, Pseudonymizer(KEY), hooks=AuditHooks(recorder))  # type: ignore[arg-type]

    async def feeder(mine: list[bytes]) -> list[Submission]:
        answers = []
        for body in mine:
            answer = await intake.submit(body, content_type="application/xml", source="jumin")
            if answer.status == "accepted":  # its events are in the trail before its answer
                kept = [str(r.event.event) for r in recorder.log.life(answer.message_id or "")]
                assert kept == ["received", "accepted"]
            answers.append(answer)
        return answers

    feeds = [bodies[i::8] for i in range(8)]
    feeds[0] = [*feeds[0], b"<not-xml", bodies[1]]  # a rejected one, and a change another feeder sent
    answers = await asyncio.gather(*(feeder(f) for f in feeds))
    assert [a.status for a in answers[0][-2:]] == ["rejected", "duplicate"]
    accepted = [a for mine in answers for a in mine if a.status == "accepted"]
    assert len(accepted) == 24 == len({a.message_id for a in accepted})
    assert sum(broker.sizes) == 24 and broker.calls < 12 and max(broker.sizes) > 1  # shared publishes
    for mine, feed in zip(answers, feeds, strict=True):  # each feeder's changes published in its order
        ids = [a.message_id for a, body in zip(mine, feed, strict=False) if a.status == "accepted"]
        published = [m.message_id for _, m in broker.published]
        assert [i for i in published if i in set(ids)] == ids
    assert all(state.is_seen(a.message_id or "") for a in accepted)
    life = recorder.log.life(accepted[0].message_id or "")
    assert [str(r.event.event) for r in life] == ["received", "accepted"]

    broker.down = True
    failed = await asyncio.gather(*(intake.submit(ks.to_xml(r), content_type="application/xml", source="jumin")
                                    for r in sample_records("jumin.idou", catalog, seed=12, n=3)),
                                  return_exceptions=True)
    assert all(isinstance(f, BrokerUnavailable) for f in failed)  # each caller hears the failure
    await intake.aclose()
    await recorder.aclose()
    recorder.log.close()
    state.close()


class CountingSeen(StateStore):
    """The SQLite state store, counting the intake's seen-id lookups."""

    lookups: list[str]

    def is_seen(self, message_id: str) -> bool:
        self.lookups.append("one")
        return super().is_seen(message_id)

    def seen_among(self, message_ids: Sequence[str]) -> set[str]:
        self.lookups.append(f"batch of {len(message_ids)}")
        return super().seen_among(message_ids)


async def test_the_seen_ids_of_a_batch_are_looked_up_in_one_query_not_one_per_message(tmp_path: Path) -> None:
    catalog = Catalog.load()
    ks = catalog.get("jumin.idou")
    bodies = [ks.to_xml(r) for r in sample_records("jumin.idou", catalog, seed=11, n=6)]
    state = CountingSeen(tmp_path / "state.sqlite")
    state.lookups = []
    intake = IntakeStage(CapturingBroker(), catalog, state, Pseudonymizer(KEY))  # type: ignore[arg-type]
    first = await intake.submit(bodies[0], content_type="application/xml", source="jumin")
    state.lookups.clear()
    answers = await intake.submit_many([RawMessage(b, "application/xml", "jumin", "jumin.idou") for b in bodies])
    assert [a.status for a in answers] == ["duplicate"] + ["accepted"] * 5
    assert answers[0].message_id == first.message_id
    assert state.lookups == ["batch of 6"]  # was six `is_seen` queries, on the event loop
    # with a previous pseudonym key: one more query, for the ids not seen under the current key
    rotated = IntakeStage(CapturingBroker(), catalog, state, Pseudonymizer(b"a-newer-key-" * 3),  # type: ignore[arg-type]
                          previous_pseudonyms=[Pseudonymizer(KEY)])
    state.lookups.clear()
    again = await rotated.submit_many([RawMessage(b, "application/xml", "jumin", "jumin.idou") for b in bodies])
    assert [a.status for a in again] == ["duplicate"] * 6
    assert [a.message_id for a in again] == [first.message_id] + [a.message_id for a in answers[1:]]
    assert state.lookups == ["batch of 6", "batch of 6"]
    state.close()
