"""The stores answer a whole batch in one query: which changes were routed (the route stage's
duplicates), which residents are parked (held behind their head) — and a stage given a batch
holds the parked resident's change while the others pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_support import CapturingBroker
from test_deliver_decode_once import zei_delivery

from bus.brokers.base import Delivery
from bus.catalog import Catalog
from bus.delivery import DeliveryStore
from bus.envelope import Envelope
from bus.ports import Outbound, Receipt
from bus.stages import DONE, DeliverStage, ResidentLine, StageHooks
from bus.state import StateStore


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def test_routed_among_answers_which_ids_of_a_batch_were_routed(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite")
    state.record_routed_many([(f"m-{n}", ["zei"]) for n in range(0, 1200, 2)])
    asked = [f"m-{n}" for n in range(1200)]  # more than one query's worth
    assert state.routed_among(asked) == {f"m-{n}" for n in range(0, 1200, 2)}
    assert state.routed_among([]) == set()


def test_parked_among_answers_the_parked_residents_of_one_destination_only(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "delivery.sqlite")
    store.park("zei", "r1", "m-1", "retrying")
    store.park("kokuho", "r2", "m-2", "retrying")
    found = store.parked_among("zei", ["r1", "r2", "r3"])
    assert list(found) == ["r1"] and found["r1"].head == "m-1"


class Recording:
    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def deliver(self, message: Outbound) -> Receipt:
        self.delivered.append(message.envelope.message_id)
        return Receipt.applied(message)


def _of(delivery: Delivery, subject: str, message_id: str) -> Delivery:
    envelope = Envelope.from_headers(delivery.headers)
    moved = Envelope(**{**{f: getattr(envelope, f) for f in envelope.__slots__},  # type: ignore[attr-defined]
                        "subject": subject, "message_id": message_id})
    return Delivery(delivery.body, message_id, subject, dict(moved.to_headers()))


async def test_a_batch_holds_the_change_of_a_parked_resident_and_delivers_the_others(
        catalog: Catalog, tmp_path: Path) -> None:
    base = zei_delivery(catalog)
    parked, free = _of(base, "p" * 32, "m-parked-2"), _of(base, "f" * 32, "m-free-1")
    store = DeliveryStore(tmp_path / "delivery.sqlite")
    store.park("zei", "p" * 32, "m-parked-1", "retrying")
    sink = Recording()
    line = ResidentLine(store, "zei", StageHooks())
    stage = DeliverStage(CapturingBroker(), catalog, line, sink)  # type: ignore[arg-type]
    assert await stage.handle([parked, free]) == [DONE, DONE]
    assert sink.delivered == ["m-free-1"]
    assert store.held_counts() == {"zei": (1, 1)}
