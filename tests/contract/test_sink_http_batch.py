"""The HTTP sink's batch form against the real simulators (real validation, uvicorn on loopback):
what the sink contract suite (test_sinks.py, TestHttpSinkBatch*) does not reach through
`deliver` alone — one refused item of a batch, a whole request failing, joined deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sink_contract_support import catalog, outbound

from adapters.simulators import SimulatorCluster, SimulatorState
from adapters.transports.http import HttpSink
from bus.errors import PermanentError, TransientError
from bus.ports import Receipt


@pytest.fixture
async def zei() -> AsyncIterator[tuple[SimulatorCluster, HttpSink]]:
    async with SimulatorCluster(["zei"], catalog=catalog()) as cluster:
        async with HttpSink(cluster.messages_url("zei"), timeout=5, batch_size=20, batch_linger_ms=20) as sink:
            yield cluster, sink


async def control(cluster: SimulatorCluster, **settings: Any) -> None:
    async with httpx.AsyncClient() as client:
        (await client.post(cluster.url("zei") + "/control", json=settings)).raise_for_status()


def state(cluster: SimulatorCluster) -> SimulatorState:
    return cluster.state("zei")


async def test_one_refused_item_is_refused_alone_and_the_others_of_its_batch_are_applied(
        zei: tuple[SimulatorCluster, HttpSink]) -> None:
    cluster, sink = zei
    messages = [outbound("zei.jumin", "zei") for _ in range(4)]
    await control(cluster, mode="reject", key=messages[2].envelope.idempotency_key)
    results = await sink.deliver_many(messages)
    assert [type(r) is Receipt for r in results] == [True, True, False, True]
    assert isinstance(results[2], PermanentError) and not isinstance(results[2], TransientError)
    assert (state(cluster).effects, state(cluster).rejected, state(cluster).batches) == (3, 1, 1)


async def test_a_whole_request_failure_is_transient_and_its_retry_applies_each_item_once(
        zei: tuple[SimulatorCluster, HttpSink]) -> None:
    cluster, sink = zei
    messages = [outbound("zei.jumin", "zei") for _ in range(3)]
    await control(cluster, mode="fail", fail_status=503, count=1)
    with pytest.raises(TransientError):
        await sink.deliver_many(messages)
    assert state(cluster).effects == 0
    assert [r.status for r in await sink.deliver_many(messages) if isinstance(r, Receipt)] == ["applied"] * 3
    assert [r.status for r in await sink.deliver_many(messages) if isinstance(r, Receipt)] == ["duplicate"] * 3
    assert state(cluster).effects == 3


async def test_the_changes_of_one_resident_in_one_batch_are_applied_in_their_order(
        zei: tuple[SimulatorCluster, HttpSink]) -> None:
    cluster, sink = zei
    messages = [outbound("zei.jumin", "zei", sequence=n) for n in (1, 2, 3)]
    await sink.deliver_many(messages)
    held = sorted(state(cluster).messages.values(), key=lambda m: m.number)
    assert [m.sequence for m in held] == [1, 2, 3]


async def test_deliveries_made_at_the_same_time_share_requests(zei: tuple[SimulatorCluster, HttpSink]) -> None:
    cluster, sink = zei
    receipts = await asyncio.gather(*(sink.deliver(outbound("zei.jumin", "zei")) for _ in range(30)))
    assert all(r.status == "applied" for r in receipts) and state(cluster).effects == 30
    assert state(cluster).batches <= 3  # 20 per request at most, joined while one is in flight
