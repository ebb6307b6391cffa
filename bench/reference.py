"""The reference: a hand-written aio-pika pipeline, the least a RabbitMQ fan-out can do (DESIGN §9).

Per input message: hardened lxml parse, XSD validation (lxml, the jumin.idou schema), publish
the message to each of its `FANOUT` output queues (persistent, mandatory, publisher confirms,
the five confirms awaited together), then ack. No ordering per resident, no state, no
projection: everything renkei does beyond this is what the ratio measures.
"""

from __future__ import annotations

import asyncio

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from lxml import etree

from bench.meter import Meter, SideResult
from bench.workload import QueueSet, Workload, preload
from bus.catalog import Catalog
from bus.synthetic.samples import SOURCE_KIND

__all__ = ["run_reference"]


async def run_reference(url: str, workload: Workload, queues: QueueSet, *, prefetch: int,
                        within: float = 300.0) -> SideResult:
    """Preload `queues.input`, then run the reference pipeline until every message is done.

    `queues` has FANOUT outputs: the reference does not route, every message goes to all of them."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    xsd = Catalog.load().get(SOURCE_KIND).xsd_path
    schema = etree.XMLSchema(etree.parse(str(xsd), parser))
    outputs = list(queues.outputs.values())
    meter = Meter(len(workload))
    acked = 0
    all_acked = asyncio.Event()

    connection = await aio_pika.connect(url, client_properties={"connection_name": "renkei-bench-reference"})
    try:
        publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await preload(publisher, queues.input, workload.messages)
        exchange = publisher.default_exchange

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal acked
            meter.start()
            schema.assertValid(etree.fromstring(message.body, parser))
            await asyncio.gather(*(
                exchange.publish(
                    aio_pika.Message(message.body, message_id=f"{message.message_id}.{queue}",
                                     headers=message.headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue, mandatory=True)
                for queue in outputs))
            meter.finish()
            await message.ack()
            acked += 1
            if acked == len(workload):
                all_acked.set()

        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=prefetch)
        queue = await consumer.get_queue(queues.input)
        tag = await queue.consume(on_message)
        await meter.wait(within)
        await asyncio.wait_for(all_acked.wait(), within)
        await queue.cancel(tag)
        await consumer.close()
        depths = await queues.depths(publisher)
    finally:
        await connection.close()
    return SideResult("reference", len(workload), meter.seconds, meter.cpu_seconds, meter.done_count,
                      sum(depths[q] for q in queues.outputs.values()), depths[queues.input])

