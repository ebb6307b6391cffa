"""The route stage routes a change by its own kind, and a change that crashes it is dead-lettered
after the poison limit with its resident parked, not requeued for ever."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_support import KEY, CapturingBroker, accepted_delivery, route_stage

from bus.brokers.base import Delivery
from bus.catalog import Catalog
from bus.delivery.dead import DeadLetters
from bus.envelope import Envelope
from bus.masking import Pseudonymizer
from bus.paths import schemas_dir
from bus.stages import DONE, CountingHooks, IntakeStage
from bus.stages.dispatch import Requeue
from bus.state import StateStore
from bus.topology import INTAKE_QUEUE, ROUTE_STAGE


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


async def test_an_online_application_is_routed_by_its_own_kind_not_as_a_resident_change(
        catalog: Catalog, tmp_path: Path) -> None:
    body = (schemas_dir() / "portal.shinsei" / "1" / "samples" / "valid" / "tenshutsu_yoyaku.xml").read_bytes()
    broker = CapturingBroker()
    intake = IntakeStage(broker, catalog, StateStore(tmp_path / "intake.sqlite"), Pseudonymizer(KEY))  # type: ignore[arg-type]
    assert (await intake.submit(body, content_type="application/xml", source="portal")).status == "accepted"
    [(_, message)] = broker.published
    broker.published.clear()
    stage, _ = route_stage(broker, catalog, tmp_path)
    outcomes = await stage.handle([Delivery(message.body, message.message_id, message.key, dict(message.headers))])
    assert outcomes == [DONE]
    assert broker.published == []  # no shipped route takes portal.shinsei; none of jumin.idou's applied


def _later(delivery: Delivery, body: bytes, sequence: int, count: int = 1) -> Delivery:
    envelope = Envelope.from_headers(delivery.headers)
    later = Envelope(**{**{f: getattr(envelope, f) for f in envelope.__slots__},  # type: ignore[attr-defined]
                        "message_id": f"{envelope.message_id}-{sequence}", "sequence": sequence})
    return Delivery(body, later.message_id, delivery.key, dict(later.to_headers()), delivery_count=count)


async def test_a_change_that_crashes_the_route_stage_is_dead_lettered_after_the_poison_limit(
        catalog: Catalog, tmp_path: Path) -> None:
    good = await accepted_delivery(catalog, tmp_path)
    poison = Delivery(b"<not-xml", good.message_id, good.key, dict(good.headers))
    broker = CapturingBroker()
    state = StateStore(tmp_path / "counters.sqlite")
    stage, dispatcher = route_stage(broker, catalog, tmp_path, hooks=CountingHooks(state), poison_after=3)
    for count in (1, 2):  # below the limit: back to the broker
        with pytest.raises(Requeue):
            await dispatcher(Delivery(poison.body, poison.message_id, poison.key, poison.headers, delivery_count=count))
    await dispatcher(Delivery(poison.body, poison.message_id, poison.key, poison.headers, delivery_count=3))
    store = stage.line.store
    [letter] = store.dead_list()
    assert (letter.destination, letter.code, letter.message_id) == (ROUTE_STAGE, "D300", good.message_id)
    assert state.counters("destination")[ROUTE_STAGE]["dead"] == 1
    assert broker.published == []

    # the resident's next change waits behind it, in order
    await dispatcher(_later(good, good.body, good_sequence(good) + 1))
    assert broker.published == [] and store.held_counts() == {ROUTE_STAGE: (1, 1)}

    # discarded by an operator: the held change goes back to the intake queue, then routes
    letters = DeadLetters(store, broker, catalog)  # type: ignore[arg-type]
    await letters.discard(letter.id, by="ops-test", reason="entered twice at the registry")
    [(queue, released)] = broker.published
    assert queue == INTAKE_QUEUE
    broker.published.clear()
    await dispatcher(Delivery(released.body, released.message_id, released.key, dict(released.headers)))
    assert broker.published, "the released change reaches its destinations"
    assert store.parked(ROUTE_STAGE, letter.subject) is None


def good_sequence(delivery: Delivery) -> int:
    return Envelope.from_headers(delivery.headers).sequence


def test_no_destination_can_be_named_like_the_route_stage_so_their_dead_letters_never_mix() -> None:
    from bus.routing.loader import _DESTINATION

    assert _DESTINATION.fullmatch(ROUTE_STAGE) is None
    assert _DESTINATION.fullmatch("zei-131016") is not None


async def test_a_change_dead_at_the_route_stage_handed_out_again_after_a_kill_is_not_dead_lettered_twice(
        catalog: Catalog, tmp_path: Path) -> None:
    """The deliver stage's case (a dead letter written, then killed before the ack), here: the
    broker hands the poison change out once more, and it stays one letter, its resident parked."""
    good = await accepted_delivery(catalog, tmp_path)
    poison = Delivery(b"<not-xml", good.message_id, good.key, dict(good.headers))
    broker = CapturingBroker()
    stage, dispatcher = route_stage(broker, catalog, tmp_path, hooks=CountingHooks(StateStore(tmp_path / "c.sqlite")),
                                    poison_after=1)
    await dispatcher(Delivery(poison.body, poison.message_id, poison.key, poison.headers, delivery_count=1))
    await dispatcher(Delivery(poison.body, poison.message_id, poison.key, poison.headers, delivery_count=2,
                              redelivered=True))  # the restart after the kill
    store = stage.line.store
    assert [letter.message_id for letter in store.dead_list()] == [good.message_id]
    parked = store.parked(ROUTE_STAGE, Envelope.from_headers(good.headers).subject)
    assert parked is not None and parked.status == "dead"
    assert broker.published == []
