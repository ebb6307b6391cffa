"""A destination configured with a sink but addressed by no route (the 中間サーバー, which only
the 団体内統合宛名 function feeds) does not stop the bus: its queue is declared and stays empty."""

from __future__ import annotations

from pathlib import Path

from bus.app import Bus
from bus.catalog import Catalog
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import Settings
from bus.topology import destination_queue


async def test_a_sink_for_a_destination_no_route_names_starts_and_receives_nothing(tmp_path: Path) -> None:
    path = tmp_path / "renkei.toml"
    path.write_text('[bus]\nstate_dir = "state"\n', encoding="utf-8")
    got: list[Outbound] = []
    sink = FunctionSink(lambda m: got.append(m) or Receipt.applied(m))
    bus = Bus(Settings.load(path, env={}), sinks={"chukan": sink}, catalog=Catalog.load())
    assert "chukan" not in bus.destinations  # no shipped route goes to the 中間サーバー directly
    try:
        await bus.start()  # before: BrokerError, the queue was never declared
        assert (await bus.broker.stats(destination_queue("chukan"))).ready == 0
        assert await bus.wait_idle(within=5)
    finally:
        await bus.stop()
    assert got == []
