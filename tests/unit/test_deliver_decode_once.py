"""The deliver stage decodes a projection only for a sink that reads its record: a sink that
sends the XML (or only counts) never pays for the parse, one that reads it gets the same record
the route stage projected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pipeline_support import CapturingBroker

import bus.stages.deliver as deliver_module
from bus.brokers.base import Delivery
from bus.catalog import Catalog
from bus.catalog.decode import decode
from bus.delivery import DeliveryStore
from bus.envelope import Envelope
from bus.ports import Outbound, Receipt
from bus.routing.router import RouteTable
from bus.stages import DONE, DeliverStage, ResidentLine, StageHooks
from bus.synthetic import Registry


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def zei_delivery(catalog: Catalog) -> Delivery:
    routes = RouteTable.load(catalog=catalog)
    record = next(Registry(seed=5).events(1))
    match = next(m for m in routes.route(record, record["municipality_code"]) if m.route.destination == "zei")
    env = Envelope(message_id="m-1", kind=match.target.kind, schema_version=match.target.version,
                   content_type="application/xml", municipality="131016", source="jumin",
                   subject="0" * 31 + "1", sequence=1, destination="zei", route=match.route.name)
    return Delivery(match.target.to_xml(match.record), env.message_id, env.subject, dict(env.to_headers()))


class Sink:
    def __init__(self, reads: bool) -> None:
        self.reads = reads
        self.records: list[dict[str, Any]] = []

    async def deliver(self, message: Outbound) -> Receipt:
        if self.reads:
            self.records.append(message.record)
            self.records.append(message.record)  # read twice: decoded once
        return Receipt.applied(message)


@pytest.mark.parametrize("reads", [False, True])
async def test_the_projection_is_decoded_only_when_the_sink_reads_its_record_and_then_once(
        catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: bool) -> None:
    decoded: list[str] = []

    def counting(body: bytes, envelope: Envelope, catalog: Catalog) -> Any:
        decoded.append(envelope.message_id)
        return decode(body, envelope, catalog)

    monkeypatch.setattr(deliver_module, "decode", counting)
    delivery, sink = zei_delivery(catalog), Sink(reads)
    line = ResidentLine(DeliveryStore(tmp_path / "delivery.sqlite"), "zei", StageHooks())
    stage = DeliverStage(CapturingBroker(), catalog, line, sink)  # type: ignore[arg-type]
    assert await stage.handle([delivery]) == [DONE]
    assert decoded == (["m-1"] if reads else [])
    if reads:
        expected = decode(delivery.body, Envelope.from_headers(delivery.headers), catalog)[1]
        assert sink.records == [expected, expected]
