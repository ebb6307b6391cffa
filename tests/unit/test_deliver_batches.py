"""The deliver stage with a sink that takes batches (bus.ports.BatchSink): one request per batch
with at most one change per resident, each item's outcome taken alone (one refused item
dead-letters alone, its resident held behind it, the others delivered), and a failure of the
whole request retried as a batch, then through the delay tiers. The stores are real; the
broker only captures what is published (a retry copy), the sink is scripted."""

# ruff: noqa: F811  (the fixtures are imported from the one-by-one tests, then requested by name)
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_support import CapturingBroker
from test_deliverer import catalog, envelope, zei_body  # noqa: F401  (fixtures shared with the one-by-one tests)

from bus.brokers.base import Delivery
from bus.catalog import Catalog
from bus.delivery import DeliveryStore, RetryPolicy
from bus.errors import PermanentError, TransientError
from bus.ports import FunctionSink, ItemResult, Outbound, Receipt, batch_size_of
from bus.stages import CountingHooks, DeliverStage, ResidentLine
from bus.state import StateStore

FAST = RetryPolicy(attempts=2, backoff=0.001, tiers=(0.15, 0.3), deadline=30.0, poison_after=3)
Answer = Callable[[str, int], ItemResult | None]


@dataclass
class BatchScript:
    """A batch sink: `whole` errors fail whole requests first; `answer(resident, sequence)` gives
    an item's error (None: applied). `requests` lists what each request carried."""

    answer: Answer = lambda resident, sequence: None
    whole: list[Exception] = field(default_factory=list)
    batch_size: int = 10
    requests: list[list[tuple[str, int]]] = field(default_factory=list)
    applied: list[tuple[str, int]] = field(default_factory=list)

    async def deliver(self, message: Outbound) -> Receipt:
        [result] = await self.deliver_many([message])
        if isinstance(result, Exception):
            raise result
        return result

    async def deliver_many(self, messages: Sequence[Outbound]) -> list[ItemResult]:
        items = [(m.envelope.subject.lstrip("0"), m.envelope.sequence) for m in messages]
        assert len(items) <= self.batch_size
        self.requests.append(items)
        if self.whole:
            raise self.whole.pop(0)
        results: list[ItemResult] = []
        for message, (resident, sequence) in zip(messages, items, strict=True):
            error = self.answer(resident, sequence)
            if error is None:
                self.applied.append((resident, sequence))
            results.append(Receipt.applied(message) if error is None else error)
        return results


@dataclass
class Stage:
    deliverer: DeliverStage
    store: DeliveryStore
    broker: CapturingBroker
    sink: BatchScript
    body: bytes

    async def handle(self, *items: tuple[str, int]) -> None:
        batch = [Delivery(self.body, envelope(r, s).message_id, envelope(r, s).subject,
                          dict(envelope(r, s).to_headers())) for r, s in items]
        outcomes = await self.deliverer.handle(batch)
        assert all(o.what == "done" for o in outcomes)

    def retried(self) -> list[tuple[str, float]]:
        return [(m.message_id, float(m.headers["x-renkei-tier"])) for _, m in self.broker.published]


@pytest.fixture
def stage(tmp_path: Path, catalog: Catalog, zei_body: bytes) -> Iterator[Stage]:
    store, state = DeliveryStore(tmp_path / "delivery.sqlite"), StateStore(tmp_path / "state.sqlite")
    hooks = CountingHooks(state)
    broker, sink = CapturingBroker(), BatchScript()
    deliverer = DeliverStage(broker, catalog, ResidentLine(store, "zei", hooks), sink,  # type: ignore[arg-type]
                             policy=FAST, hooks=hooks)
    yield Stage(deliverer, store, broker, sink, zei_body)
    store.close()
    state.close()


async def test_a_batch_goes_in_one_request_with_one_change_per_resident_and_the_later_ones_after(
        stage: Stage) -> None:
    await stage.handle(("a", 1), ("a", 2), ("b", 1), ("c", 1), ("a", 3))
    assert stage.sink.requests == [[("a", 1), ("b", 1), ("c", 1)], [("a", 2)], [("a", 3)]]
    assert [seq for r, seq in stage.sink.applied if r == "a"] == [1, 2, 3]
    assert stage.broker.published == []


async def test_one_refused_item_is_dead_lettered_alone_its_resident_held_behind_it_and_the_others_acked(
        stage: Stage) -> None:
    stage.sink.answer = lambda r, s: PermanentError("zei: HTTP 200: item rejected [R300]") if (r, s) == ("a", 1) \
        else None
    await stage.handle(("a", 1), ("b", 1), ("a", 2), ("c", 1))
    assert stage.sink.requests == [[("a", 1), ("b", 1), ("c", 1)]]  # a's 2 is never sent behind a refused 1
    assert stage.sink.applied == [("b", 1), ("c", 1)]
    [letter] = stage.store.dead_list()
    assert (letter.code, letter.message_id) == ("D100", "a-001") and "R300" in letter.reason
    assert stage.store.held_counts() == {"zei": (1, 1)}
    assert stage.store.parked("zei", envelope("b", 1).subject) is None


async def test_a_whole_request_failure_retries_the_batch_in_process(stage: Stage) -> None:
    stage.sink.whole = [TransientError("zei: HTTP 503: Service Unavailable")]
    await stage.handle(("a", 1), ("b", 1))
    assert stage.sink.requests == [[("a", 1), ("b", 1)], [("a", 1), ("b", 1)]]
    assert stage.sink.applied == [("a", 1), ("b", 1)] and stage.broker.published == []


async def test_a_batch_still_failing_goes_to_the_delay_tiers_each_resident_parked_behind_its_change(
        stage: Stage) -> None:
    stage.sink.whole = [TransientError("zei: HTTP 503"), TransientError("zei: HTTP 503")]
    await stage.handle(("a", 1), ("b", 1), ("a", 2))
    assert len(stage.sink.requests) == FAST.attempts and stage.sink.applied == []
    assert stage.retried() == [("a-001", 1.0), ("b-001", 1.0)]
    assert stage.store.parked("zei", envelope("a", 1).subject) is not None
    assert stage.store.held_counts() == {"zei": (1, 1)}  # a's 2 waits behind a's 1


async def test_an_item_to_be_retried_is_sent_again_without_the_items_that_were_applied(stage: Stage) -> None:
    told = {"n": 1}

    def answer(resident: str, sequence: int) -> ItemResult | None:
        if resident == "b" and told["n"]:
            told["n"] -= 1
            return TransientError("zei: HTTP 200: item to be retried")
        return None

    stage.sink.answer = answer
    await stage.handle(("a", 1), ("b", 1), ("c", 1))
    assert stage.sink.requests == [[("a", 1), ("b", 1), ("c", 1)], [("b", 1)]]
    assert sorted(stage.sink.applied) == [("a", 1), ("b", 1), ("c", 1)]


async def test_a_retry_after_beyond_the_in_process_wait_goes_to_the_broker_at_once(stage: Stage) -> None:
    error = TransientError("zei: HTTP 429")
    error.retry_after = 30.0
    stage.sink.whole = [error]
    await stage.handle(("a", 1), ("b", 1))
    assert len(stage.sink.requests) == 1
    assert sorted(stage.retried()) == [("a-001", 1.0), ("b-001", 1.0)]


async def test_a_batch_larger_than_the_sinks_batch_size_goes_in_several_requests(stage: Stage) -> None:
    stage.sink.batch_size = stage.deliverer.batch_size = 2
    await stage.handle(("a", 1), ("b", 1), ("c", 1))
    assert stage.sink.requests == [[("a", 1), ("b", 1)], [("c", 1)]]


async def test_a_sink_without_deliver_many_is_given_one_message_at_a_time(
        tmp_path: Path, catalog: Catalog, zei_body: bytes) -> None:
    seen: list[str] = []
    sink = FunctionSink(lambda m: (seen.append(m.envelope.message_id), Receipt.applied(m))[1])
    assert batch_size_of(sink) == 1
    store = DeliveryStore(tmp_path / "delivery.sqlite")
    deliverer = DeliverStage(CapturingBroker(), catalog, ResidentLine(store, "zei", CountingHooks(  # type: ignore[arg-type]
        StateStore(tmp_path / "state.sqlite"))), sink, policy=FAST)
    batch = [Delivery(zei_body, envelope(r, s).message_id, envelope(r, s).subject, dict(envelope(r, s).to_headers()))
             for r, s in (("a", 1), ("a", 2), ("b", 1))]
    await deliverer.handle(batch)
    assert seen == ["a-001", "a-002", "b-001"]
    store.close()
