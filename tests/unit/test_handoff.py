"""The intake's validated record handed to the route stage of the same process
(bus.stages.handoff, `[bus] route_fast_path`): taken only for the very bytes the intake
validated, equal to what decoding them gives, taken once, bounded; anything else is decoded as
before, and the route stage publishes the same either way."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_support import KEY, CapturingBroker, route_stage

from bus.app import Bus, BusParts
from bus.brokers.base import Delivery
from bus.catalog import Catalog
from bus.catalog.decode import decode
from bus.envelope import Envelope
from bus.masking import Pseudonymizer
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import BusSettings, Settings
from bus.stages import DONE, Decoded, IntakeStage
from bus.state import StateStore
from bus.synthetic.samples import sample_records


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def _bodies(catalog: Catalog, n: int) -> list[bytes]:
    ks = catalog.get("jumin.idou")
    return [ks.to_xml(record) for record in sample_records("jumin.idou", catalog, seed=5, n=n)]


async def _intake(catalog: Catalog, tmp_path: Path, bodies: list[bytes],
                  decoded: Decoded | None) -> tuple[CapturingBroker, list[Delivery]]:
    broker = CapturingBroker()
    intake = IntakeStage(broker, catalog, StateStore(tmp_path / "intake.sqlite"), Pseudonymizer(KEY))  # type: ignore[arg-type]
    intake.hand_records_to(decoded)
    for body in bodies:
        assert (await intake.submit(body, content_type="application/xml", source="jumin")).status == "accepted"
    deliveries = [Delivery(m.body, m.message_id, m.key, dict(m.headers)) for _, m in broker.published]
    broker.published.clear()
    return broker, deliveries


async def test_the_record_the_intake_kept_is_the_record_decoding_its_body_gives(catalog: Catalog,
                                                                                tmp_path: Path) -> None:
    decoded = Decoded()
    _, deliveries = await _intake(catalog, tmp_path, _bodies(catalog, 40), decoded)
    assert len(decoded) == len(deliveries) == 40
    for delivery in deliveries:
        envelope = Envelope.from_headers(delivery.headers)
        assert decoded.decode(delivery.body, envelope, catalog) == decode(delivery.body, envelope, catalog)
    assert (decoded.taken, decoded.decoded, len(decoded)) == (40, 0, 0)  # each taken once, then forgotten


async def test_other_bytes_another_kind_or_a_forgotten_change_are_decoded_from_the_body(
        catalog: Catalog, tmp_path: Path) -> None:
    decoded = Decoded(size=2)
    bodies = _bodies(catalog, 4)
    _, deliveries = await _intake(catalog, tmp_path, bodies, decoded)
    assert len(decoded) == 2  # the oldest two forgotten
    first = Envelope.from_headers(deliveries[0].headers)
    assert decoded.decode(deliveries[0].body, first, catalog) == decode(deliveries[0].body, first, catalog)
    third, fourth = (Envelope.from_headers(d.headers) for d in deliveries[2:])
    # the third's id with the fourth's body: not the bytes the intake validated for that id
    _, record = decoded.decode(deliveries[3].body, third, catalog)
    assert record == decode(deliveries[3].body, fourth, catalog)[1]
    _, kept = decoded.decode(deliveries[3].body, fourth, catalog)  # still kept: taken
    assert kept == record
    assert (decoded.taken, decoded.decoded) == (1, 2)


async def test_the_route_stage_publishes_the_same_with_the_record_handed_over_or_decoded(
        catalog: Catalog, tmp_path: Path) -> None:
    bodies = _bodies(catalog, 30)
    published: list[list[tuple[str, bytes, dict[str, object]]]] = []
    for name, decoded in (("handed", Decoded()), ("decoded", None)):
        (tmp_path / name).mkdir()
        broker, deliveries = await _intake(catalog, tmp_path / name, bodies, decoded)
        stage, _ = route_stage(broker, catalog, tmp_path / name)
        stage._decoded = decoded
        assert await stage.handle(deliveries) == [DONE] * len(deliveries)
        await stage.aclose()
        published.append([(q, m.body, {k: v for k, v in m.headers.items() if k != "occurred_at"})
                          for q, m in broker.published])
        if decoded is not None:
            assert decoded.taken == len(deliveries)
    assert published[0] == published[1] and published[0]


@pytest.mark.parametrize("fast", [True, False])
async def test_the_bus_hands_its_intakes_records_to_its_route_stage_unless_the_setting_is_off(
        catalog: Catalog, tmp_path: Path, fast: bool) -> None:
    settings = Settings(bus=BusSettings(state_dir=tmp_path, pseudonym_key=KEY, route_fast_path=fast))
    received: list[Outbound] = []
    bus = Bus(settings, sinks={}, catalog=catalog)
    bus.sinks.update({name: FunctionSink(lambda m: received.append(m) or Receipt.applied(m))
                      for name in bus.destinations})
    await bus.start(BusParts())
    try:
        for body in _bodies(catalog, 5):
            assert (await bus.intake.submit(body, content_type="application/xml", source="jumin")).status == "accepted"
        assert await bus.wait_idle(20)
        [stage] = bus._route_stages
        if fast:
            assert stage._decoded is not None and stage._decoded.taken == 5 and stage._decoded.decoded == 0
        else:
            assert stage._decoded is None
        assert received  # routed and delivered either way
    finally:
        await bus.stop()
