"""The delivery stage on the (real, file-backed) embedded broker with a scripted sink:
retries in process and through delay tiers, dead letters, per-resident order kept by
parking a failing resident while the others flow, and the operator's replay and discard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bus.brokers.base import OutgoingMessage
from bus.brokers.embedded import EmbeddedBroker
from bus.catalog import Catalog
from bus.delivery import DeadFilter, DeliveryStore, RetryPolicy
from bus.delivery.dead import DeadLetters
from bus.envelope import Envelope
from bus.errors import DeadLetterNotFound, PermanentError, RenkeiError, TransientError
from bus.ports import ItemResult, Outbound, Receipt
from bus.routing.router import RouteTable
from bus.stages import CountingHooks, DeliverStage, Dispatcher, ResidentLine
from bus.state import StateStore
from bus.synthetic import Registry
from bus.topology import destination_queue

QUEUE = destination_queue("zei")
FAST = RetryPolicy(attempts=2, backoff=0.001, tiers=(0.15, 0.3), deadline=30.0, poison_after=3)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def zei_body(catalog: Catalog) -> bytes:
    """A valid zei.jumin projection (the sink decodes it; its content does not matter here)."""
    routes = RouteTable.load(catalog=catalog)
    record = next(Registry(seed=3).events(1))
    match = next(m for m in routes.route(record, record["municipality_code"]) if m.route.destination == "zei")
    return match.target.to_xml(match.record)


def envelope(resident: str, sequence: int) -> Envelope:
    return Envelope(message_id=f"{resident}-{sequence:03d}", kind="zei.jumin", schema_version=1,
                    content_type="application/xml", municipality="131016", source="jumin",
                    subject=f"{resident:0>32}", sequence=sequence, destination="zei", route="zei-all-changes")


@dataclass
class ScriptedSink:
    """Answers by resident: `script(resident, sequence)` returns None (applied) or raises."""

    script: Callable[[str, int], None] = lambda resident, sequence: None
    applied: list[tuple[str, int]] = field(default_factory=list)
    calls: int = 0

    async def deliver(self, message: Outbound) -> Receipt:
        self.calls += 1
        resident = message.envelope.subject.lstrip("0")
        self.script(resident, message.envelope.sequence)
        self.applied.append((resident, message.envelope.sequence))
        return Receipt.applied(message)

    def order(self, resident: str) -> list[int]:
        return [seq for r, seq in self.applied if r == resident]


@dataclass
class Harness:
    broker: EmbeddedBroker
    store: DeliveryStore
    state: StateStore
    sink: ScriptedSink
    deliverer: DeliverStage
    body: bytes

    async def send(self, resident: str, *sequences: int) -> None:
        for seq in sequences:
            env = envelope(resident, seq)
            await self.broker.publish(QUEUE, OutgoingMessage(self.body, env.message_id, env.subject,
                                                             dict(env.to_headers())))

    async def until(self, check: Callable[[], bool], within: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while not check():
            assert asyncio.get_running_loop().time() < deadline, "not reached in time"
            await asyncio.sleep(0.02)


@pytest.fixture
async def harness(tmp_path: Path, catalog: Catalog, zei_body: bytes) -> AsyncIterator[Harness]:
    broker = EmbeddedBroker(tmp_path / "broker.sqlite", poll_interval=0.02)
    await broker.connect()
    await broker.declare(QUEUE)
    store, state, sink = DeliveryStore(tmp_path / "delivery.sqlite"), StateStore(tmp_path / "state.sqlite"), \
        ScriptedSink()
    hooks = CountingHooks(state)
    line = ResidentLine(store, "zei", hooks)
    deliverer = DeliverStage(broker, catalog, line, sink, policy=FAST, hooks=hooks)
    consumer = await broker.consume(QUEUE, Dispatcher(deliverer, hooks, line, poison_after=FAST.poison_after),
                                    concurrency=4)
    yield Harness(broker, store, state, sink, deliverer, zei_body)
    await consumer.cancel()
    await broker.close()
    store.close()
    state.close()


def fail_times(n: int, error: Exception, resident: str = "a") -> Callable[[str, int], None]:
    left = {"n": n}

    def script(who: str, sequence: int) -> None:
        if who == resident and left["n"] > 0:
            left["n"] -= 1
            raise error
    return script


async def test_a_brief_failure_is_absorbed_by_the_in_process_retry(harness: Harness) -> None:
    harness.sink.script = fail_times(1, TransientError("503"))
    await harness.send("a", 1)
    await harness.until(lambda: harness.sink.applied == [("a", 1)])
    assert harness.sink.calls == 2
    assert harness.state.counters("destination")["zei"].get("retried", 0) == 0  # no broker tier needed


async def test_a_longer_outage_retries_through_the_delay_tiers_and_keeps_the_residents_order(
    harness: Harness,
) -> None:
    harness.sink.script = fail_times(3, TransientError("503"))  # two in-process tries, then a tier
    await harness.send("a", 1, 2, 3)
    await harness.send("b", 1, 2)
    await harness.until(lambda: len(harness.sink.applied) == 5)
    assert harness.sink.order("a") == [1, 2, 3]
    assert harness.sink.order("b") == [1, 2]
    assert harness.sink.applied.index(("b", 2)) < harness.sink.applied.index(("a", 1))  # b was not held up
    counters = harness.state.counters("destination")["zei"]
    assert counters["retried"] >= 1 and counters["held"] >= 1
    await harness.until(lambda: harness.store.parked("zei", envelope("a", 1).subject) is None)


async def test_a_refused_change_is_dead_lettered_and_holds_back_only_its_resident(harness: Harness) -> None:
    harness.sink.script = fail_times(1, PermanentError("422 R401"))
    await harness.send("a", 1, 2, 3)
    await harness.send("b", 1)
    await harness.until(lambda: ("b", 1) in harness.sink.applied and len(harness.store.dead_list()) == 1)
    await harness.until(lambda: harness.store.held_counts().get("zei") == (1, 2))
    [letter] = harness.store.dead_list()
    assert (letter.code, letter.message_id, letter.state) == ("D100", "a-001", "dead")
    assert harness.sink.order("a") == []  # 2 and 3 wait behind 1

    letters = DeadLetters(harness.store, harness.broker, Catalog.load())
    await letters.replay(letter.id, by="ops")  # the receiver was fixed: the script fails no more
    await harness.until(lambda: harness.sink.order("a") == [1, 2, 3])
    assert harness.store.parked("zei", envelope("a", 1).subject) is None
    assert harness.store.dead_list() == []
    assert harness.store.dead(letter.id).state == "replayed"  # type: ignore[union-attr]


async def test_a_discarded_change_releases_the_later_ones_in_order(harness: Harness) -> None:
    harness.sink.script = fail_times(1, PermanentError("422"))
    await harness.send("a", 1, 2, 3)
    await harness.until(lambda: harness.store.held_counts().get("zei") == (1, 2))
    [letter] = harness.store.dead_list()
    letters = DeadLetters(harness.store, harness.broker, Catalog.load())
    with pytest.raises(RenkeiError, match="reason"):
        await letters.discard(letter.id, by="ops", reason=" ")
    await letters.discard(letter.id, by="ops", reason="entered twice at the counter")
    await harness.until(lambda: harness.sink.order("a") == [2, 3])
    resolved = harness.store.dead(letter.id)
    assert resolved is not None and (resolved.state, resolved.resolved_by) == ("discarded", "ops")
    assert resolved.resolved_reason == "entered twice at the counter"
    with pytest.raises(DeadLetterNotFound, match="already discarded"):
        await letters.replay(letter.id, by="ops")


async def test_past_the_deadline_a_failing_change_is_dead_lettered(harness: Harness) -> None:
    harness.deliverer.policy = RetryPolicy(attempts=1, backoff=0.001, tiers=(0.1,), deadline=0.35)
    harness.sink.script = lambda who, seq: (_ for _ in ()).throw(TransientError("down"))
    await harness.send("a", 1)
    await harness.until(lambda: len(harness.store.dead_list()) == 1)
    [letter] = harness.store.dead_list(DeadFilter(code="D200"))
    assert letter.attempts >= 3  # the first try and at least two tiers
    assert "deadline" in letter.reason


async def test_a_poison_message_is_dead_lettered_after_crashing_the_handler_repeatedly(harness: Harness) -> None:
    harness.sink.script = lambda who, seq: (_ for _ in ()).throw(KeyError("bug"))
    await harness.send("a", 1)
    await harness.send("b", 1)
    await harness.until(lambda: len(harness.store.dead_list(DeadFilter(code="D300"))) == 2)
    assert harness.sink.calls == 2 * FAST.poison_after


async def test_dead_letters_are_shown_masked(harness: Harness) -> None:
    harness.sink.script = fail_times(1, PermanentError("422"))
    await harness.send("a", 1)
    await harness.until(lambda: len(harness.store.dead_list()) == 1)
    [letter] = harness.store.dead_list()
    shown = DeadLetters(harness.store, harness.broker, Catalog.load()).show(letter.id)
    assert shown.masked
    text = repr(shown.record)
    assert "personal_number" in text and "(12 chars)" in text
    raw = DeadLetters(harness.store, harness.broker, Catalog.load()).show(letter.id, unmasked_by="ops")
    assert not raw.masked and raw.record != shown.record


class Killed(BaseException):
    """kill -9: the handler stops where it is; nothing after it runs, nothing is acked."""


async def test_a_kill_during_a_release_never_sends_the_head_again_after_the_later_changes(
        tmp_path: Path, catalog: Catalog, zei_body: bytes) -> None:
    """R parked behind change 1 with 2 and 3 held; 1 is delivered and the release has delivered 2
    when the bus is killed (1 still unacked). After the restart the release is resumed (3) and
    the broker hands out 1 again: it must not reach the receiver after 2 and 3."""
    from bus.brokers.base import Delivery
    from bus.stages import StageHooks

    killed = {"done": False}

    def script(resident: str, sequence: int) -> None:
        if sequence == 3 and not killed["done"]:
            killed["done"] = True
            raise Killed

    sink = ScriptedSink(script)
    broker = EmbeddedBroker(tmp_path / "broker.sqlite", poll_interval=0.02)
    await broker.connect()
    store = DeliveryStore(tmp_path / "delivery.sqlite")
    subject = envelope("r", 1).subject
    store.park("zei", subject, "r-001", "retrying")
    for seq in (2, 3):
        env = envelope("r", seq)
        assert store.hold("zei", subject, seq, env.message_id, dict(env.to_headers()), zei_body)
    head = Delivery(zei_body, "r-001", subject, dict(envelope("r", 1).to_headers()), redelivered=True,
                    delivery_count=2)  # the retry copy the delay tier handed out
    stage = DeliverStage(broker, catalog, ResidentLine(store, "zei", StageHooks()), sink, policy=FAST)
    with pytest.raises(Killed):
        await stage.handle([head])
    assert sink.order("r") == [1, 2]
    store.close()

    store = DeliveryStore(tmp_path / "delivery.sqlite")  # the restart
    stage = DeliverStage(broker, catalog, ResidentLine(store, "zei", StageHooks()), sink, policy=FAST)
    await stage.resume()
    await stage.handle([Delivery(head.body, head.message_id, head.key, head.headers, redelivered=True,
                                 delivery_count=3)])
    order = sink.order("r")
    assert order == [1, 2, 3], order  # never 1 after 2 or 3
    assert store.parked("zei", subject) is None
    store.close()
    await broker.close()


@dataclass
class BatchScriptedSink(ScriptedSink):
    """ScriptedSink that also takes batches (bus.ports.BatchSink): each item answered by the script."""

    batch_size: int = 20

    async def deliver_many(self, messages: Sequence[Outbound]) -> list[ItemResult]:
        results: list[ItemResult] = []
        for message in messages:
            try:
                results.append(await self.deliver(message))
            except (TransientError, PermanentError) as error:
                results.append(error)
        return results


@pytest.mark.parametrize("batch_size", [1, 20])
async def test_a_dead_lettered_change_handed_out_again_after_a_kill_is_not_dead_lettered_twice(
        tmp_path: Path, catalog: Catalog, zei_body: bytes, batch_size: int) -> None:
    """The receiver refuses change 1 for good: it is dead-lettered and its resident parked behind
    it, and the bus is killed before the broker's ack. After the restart the broker hands out 1
    again (the cluster suite's killed deliverer): it is a dead letter already, so it is neither
    sent again nor dead-lettered a second time (CI once found two letters for one change)."""
    from bus.brokers.base import Delivery
    from bus.stages import StageHooks

    def refuse(resident: str, sequence: int) -> None:
        raise PermanentError("refused for good")

    sink = ScriptedSink(refuse) if batch_size == 1 else BatchScriptedSink(refuse, batch_size=batch_size)
    broker = EmbeddedBroker(tmp_path / "broker.sqlite", poll_interval=0.02)
    await broker.connect()
    store = DeliveryStore(tmp_path / "delivery.sqlite")
    env = envelope("r", 1)
    first = Delivery(zei_body, env.message_id, env.subject, dict(env.to_headers()))
    stage = DeliverStage(broker, catalog, ResidentLine(store, "zei", StageHooks()), sink, policy=FAST)
    await stage.handle([first])  # dead-lettered; killed before the ack
    assert sink.calls == 1 and len(store.dead_list()) == 1, store.dead_list()
    stage = DeliverStage(broker, catalog, ResidentLine(store, "zei", StageHooks()), sink, policy=FAST)  # the restart
    later = envelope("r", 2)
    await stage.handle([Delivery(zei_body, env.message_id, env.subject, dict(env.to_headers()), redelivered=True,
                                 delivery_count=2),
                        Delivery(zei_body, later.message_id, later.subject, dict(later.to_headers()))])
    letters = store.dead_list()
    assert [letter.message_id for letter in letters] == [env.message_id], letters
    assert sink.calls == 1  # not sent again
    parked = store.parked("zei", env.subject)
    assert parked is not None and parked.head == env.message_id and parked.status == "dead"
    assert store.next_held("zei", env.subject) is not None  # change 2 waits behind the letter
    store.close()
    await broker.close()
