"""The FastStream side: the reference's work written as a FastStream service would write it.

Issue 10's last row compares renkei's router with "a FastStream pipeline doing the same 5
confirmed publishes". Per input message, as `bench/reference.py` does it: hardened lxml parse,
XSD validation (jumin.idou), publish the body to each of the `FANOUT` output queues
(persistent, mandatory, publisher confirms, the five awaited together), then FastStream acks
(its default ack policy: after the handler returns). A `RabbitBroker` with one subscriber on
the input queue, the same prefetch as the other sides, FastStream's own consume and publish path.

FastStream is in the `bench` extra only (`pip install -e '.[bench]'`): it is imported when
this side runs, and `available()` says whether it can.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from importlib import metadata
from typing import Any

from lxml import etree

from bench.meter import Meter, SideResult
from bench.workload import QueueSet, Workload, preload
from bus.catalog import Catalog
from bus.synthetic.samples import SOURCE_KIND

__all__ = ["WHAT", "available", "run_faststream", "version"]

WHAT = ("FastStream RabbitBroker: one subscriber (the router's prefetch), lxml parse + XSD validate, "
        "broker.publish to 5 queues (persistent, mandatory, confirms awaited together), "
        "ack by FastStream after the handler")


def available() -> bool:
    """Whether FastStream (the `bench` extra) is installed."""
    return importlib.util.find_spec("faststream") is not None


def version() -> str:
    return metadata.version("faststream") if available() else "not installed"


async def run_faststream(url: str, workload: Workload, queues: QueueSet, *, prefetch: int,
                         within: float = 300.0) -> SideResult:
    """Preload `queues.input`, then run the FastStream pipeline until every message is acked."""
    import aio_pika  # the preload and the final queue depths use the same client as the other sides
    from faststream.rabbit import Channel, RabbitBroker, RabbitMessage, RabbitQueue

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    schema = etree.XMLSchema(etree.parse(str(Catalog.load().get(SOURCE_KIND).xsd_path), parser))
    outputs = list(queues.outputs.values())
    meter = Meter(len(workload))
    acked = asyncio.Event()
    done = 0

    connection = await aio_pika.connect(url, client_properties={"connection_name": "renkei-bench-faststream-admin"})
    try:
        await preload(await connection.channel(publisher_confirms=True), queues.input, workload.messages)
        quiet = logging.getLogger("renkei.bench.faststream")
        quiet.setLevel(logging.WARNING)  # FastStream logs every message at INFO otherwise
        broker = RabbitBroker(url, logger=quiet, app_id="renkei-bench-faststream")
        # passive: the queue is the run's own, declared by QueueSet as renkei declares its queues
        source = RabbitQueue(queues.input, declare=False)

        @broker.subscriber(source, channel=Channel(prefetch_count=prefetch))
        async def handle(body: bytes, message: RabbitMessage) -> None:
            nonlocal done
            meter.start()
            schema.assertValid(etree.fromstring(body, parser))
            headers: dict[str, Any] = dict(message.headers or {})
            await asyncio.gather(*(
                broker.publish(body, queue=queue, persist=True, mandatory=True, headers=headers,
                               message_id=f"{message.message_id}.{queue}")
                for queue in outputs))
            meter.finish()
            done += 1
            if done == len(workload):
                acked.set()

        await broker.start()
        try:
            await meter.wait(within)
            await asyncio.wait_for(acked.wait(), within)
        finally:
            await broker.stop()  # lets the running handlers finish: their acks are sent
        depths = await queues.depths(await connection.channel())
    finally:
        await connection.close()
    return SideResult("faststream", len(workload), meter.seconds, meter.cpu_seconds, meter.done_count,
                      sum(depths[q] for q in queues.outputs.values()), depths[queues.input])
