"""A connection opened for one look (`renkei status`, a process's /readyz probe: `AmqpBroker.describe`
unconnected) that loses its node is no failover of the bus: it is logged at debug level, while the
bus's own connection still warns. Found by the N-way cluster suite: a router's probe connection,
open when the node was killed, logged a second "broker connection lost" beside the bus's own, which
reads as the bus's connection flapping."""

from __future__ import annotations

import aio_pika
import pytest
from structlog.testing import capture_logs
from yarl import URL

from bus.brokers.amqp.connection import _Failover

NODES = ["amqp://guest:guest@127.0.0.1:5681/v", "amqp://guest:guest@127.0.0.1:5682/v"]


@pytest.mark.parametrize(("brief", "level"), [(False, "warning"), (True, "debug")])
async def test_a_lost_connection_is_told_as_a_warning_only_when_it_is_the_bus_own(brief: bool, level: str) -> None:
    connection = aio_pika.RobustConnection(URL(NODES[0]))
    with capture_logs() as logs:
        _Failover(NODES, brief=brief)(connection, ConnectionResetError(104, "reset"))
    [said] = [e for e in logs if e["event"].startswith("broker connection lost")]
    assert said["log_level"] == level
    assert str(connection.url).endswith(":5682/v")  # either way it points at the next node


async def test_describe_unconnected_opens_a_brief_connection_and_the_bus_a_lasting_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bus.brokers.amqp import AmqpBroker, connection
    from bus.errors import BrokerUnavailable

    opened: list[bool] = []

    async def refuse(url: str, **kwargs: object) -> aio_pika.RobustConnection:
        opened.append(bool(kwargs.get("brief")))
        raise BrokerUnavailable("no node")

    monkeypatch.setattr(connection, "open_connection", refuse)
    described = await AmqpBroker(NODES[0]).describe(["renkei.intake"])
    with pytest.raises(BrokerUnavailable):
        await AmqpBroker(NODES[0]).connect()
    assert described.reachable is False and opened == [True, False]
