"""N processes on one sharded queue (RabbitMQ, `[bus] shards`): with shard groups they split
the shards, each resident in one of them; when one goes away its shards pass to the others,
which stood by for them (single active consumer)."""

from __future__ import annotations

import asyncio

import pytest
from broker_cases import Recorder, eventually, message, unique_queue

from bus.brokers.amqp import AmqpBroker
from bus.brokers.amqp.topology import ShardGroup

pytestmark = pytest.mark.amqp


def _broker(url: str, group: str) -> AmqpBroker:
    broker = AmqpBroker(url, shards=4)
    broker.shard_group = ShardGroup.parse(group)
    broker.standby_after = 0.5
    return broker


async def test_two_processes_with_shard_groups_split_the_residents_and_one_takes_over_when_the_other_goes(
        amqp_url: str) -> None:
    one, other = _broker(amqp_url, "0/2"), _broker(amqp_url, "1/2")
    name = unique_queue()
    seen_one, seen_other = Recorder(), Recorder()
    for broker in (one, other):
        await broker.connect()
    try:
        await one.declare(name)
        consumers = [await one.consume(name, seen_one), await other.consume(name, seen_other)]
        await asyncio.sleep(1.0)  # both stand by for the other's shards now
        await one.publish_many([(name, message(n, key=f"resident-{n % 40}")) for n in range(80)])
        await eventually(lambda: len(seen_one.done) + len(seen_other.done) == 80)
        keys_one = {d.key for d in seen_one.done}
        keys_other = {d.key for d in seen_other.done}
        assert keys_one and keys_other, "both processes take shards"
        assert not keys_one & keys_other, "a resident is in one shard, taken by one process"

        await consumers[0].cancel()  # the first process goes away: its shards pass to the standby
        before = len(seen_other.done)
        await one.publish_many([(name, message(n, key=f"resident-{n % 40}")) for n in range(80, 120)])
        await eventually(lambda: len(seen_other.done) == before + 40)
        assert {d.key for d in seen_other.done[before:]} == {f"resident-{n}" for n in range(40)}
        assert len(seen_one.done) + before == 80  # nothing went to the process that left
        await consumers[1].cancel()
    finally:
        for broker in (one, other):
            await broker.close()

