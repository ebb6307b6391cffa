"""A kill -9 must never leave the `accepted` counter short of the changes the intake took
(tests/faults/test_faults_ingest.py asserts N <= accepted). A change marked seen answers
"duplicate" when it is sent again, so the counts of a batch must be written before its seen
ids: killed in between, the batch is accepted again and counted twice (the allowed side),
never marked seen with its counts lost (fault run ci14, stop 22: 5,800 counted of 6,000)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline_support import KEY, CapturingBroker

from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.stages import IntakeStage
from bus.stages.hooks import CountingHooks
from bus.stages.intake import RawMessage
from bus.state import StateStore
from bus.synthetic.samples import sample_records


class WatchedState(StateStore):
    """Notes the `accepted` counter as it stands in the file when each batch is marked seen."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.accepted_when_marked: list[tuple[int, int]] = []  # (ids marked, accepted counted by then)

    def mark_seen_many(self, seen: Sequence[tuple[str, str]]) -> None:
        counted = self.counters("source").get("jumin", {}).get("accepted", 0)
        self.accepted_when_marked.append((len(seen), counted))
        super().mark_seen_many(seen)


async def test_a_batchs_accepted_counts_are_in_the_store_before_its_ids_are_marked_seen(tmp_path: Path) -> None:
    catalog = Catalog.load()
    ks = catalog.get("jumin.idou")
    bodies = [ks.to_xml(r) for r in sample_records("jumin.idou", catalog, seed=5, n=9)]
    state = WatchedState(tmp_path / "state.sqlite")
    intake = IntakeStage(CapturingBroker(), catalog, state, Pseudonymizer(KEY),  # type: ignore[arg-type]
                         hooks=CountingHooks(state))
    try:
        await intake.submit_many([RawMessage(b, "application/xml", "jumin", "jumin.idou") for b in bodies[:5]])
        await intake.submit(bodies[5], content_type="application/xml", source="jumin")
        await intake.submit_many([RawMessage(b, "application/xml", "jumin", "jumin.idou") for b in bodies[4:]])
        # each batch's counts were durable before its seen ids: 5, then 1, then 4 (the fifth a duplicate)
        assert state.accepted_when_marked == [(5, 5), (1, 6), (3, 9)]
        assert state.counters("source")["jumin"]["accepted"] == 9
    finally:
        await intake._hooks.written()
        state.close()
