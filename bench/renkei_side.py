"""The renkei side: the real router stage on the real RabbitMQ broker.

`bus.stages.RouteStage`, run by its `bus.stages.Dispatcher`, consumes the input queue through
`bus.brokers.amqp.AmqpBroker` in batches (`Broker.consume_batches`) with the concurrency and
the `[bus] batch_size` / `batch_linger_ms` `bus.app.Bus` gives it, and with the shipped
routes: per batch it publishes every projection together and awaits their confirms, records
the batch routed in one commit and acks each message after that; per message it drops
duplicates (state), decodes the XML through the hardened parser, routes (CEL), projects,
validates each projection against its target XSD, publishes to every destination queue
(confirmed), records the message as routed, reports its events to the hooks `bus.app.Bus`
registers (audit, counters, log), and the dispatcher returns once they are written so the
broker acks it.
Only the queue names differ from `Bus`: they are the run's own (`QueueSet`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import aio_pika

from bench.meter import Meter, SideResult
from bench.workload import QueueSet, Workload, preload
from bus.audit.fanout import split
from bus.audit.hooks import AuditHooks
from bus.audit.log import AuditLog
from bus.audit.recorder import AuditRecorder
from bus.brokers.amqp import AmqpBroker
from bus.brokers.base import Delivery
from bus.catalog import Catalog
from bus.delivery.store import DeliveryStore
from bus.paths import routes_dir
from bus.routing.router import RouteTable
from bus.settings import BusSettings, Settings
from bus.settings_batching import BatchSettings
from bus.stages import CountingHooks, Dispatcher, Hooks, LoggingHooks, ResidentLine, RouteStage
from bus.state import StateStore
from bus.topology import ROUTE_STAGE

__all__ = ["ROUTER_CONCURRENCY", "run_renkei"]

ROUTER_CONCURRENCY = 32  # as bus.app.Bus starts the router (prefetch: BatchSettings.router_prefetch)


async def run_renkei(url: str, workload: Workload, queues: QueueSet, *, audit: bool = True,
                     state_dir: Path | None = None, within: float = 300.0, fast_path: bool = True,
                     batching: BatchSettings | None = None, templates: bool = True) -> SideResult:
    """Preload `queues.input`, then run renkei's router until every message is routed.

    `audit`: record the audit trail's "routed" events as `bus.app.Bus` does (buffered, written
    in batches by a worker thread; the router does not wait for them). `fast_path`: the
    broker's `[bus] amqp_fast_path`. `batching`: `[bus] batch_size` and `batch_linger_ms`
    (the defaults; batch_size 1 is the router one message at a time). `templates`: `[bus]
    route_fast_path`."""
    with tempfile.TemporaryDirectory(prefix="renkei-bench-", dir=state_dir) as tmp:
        return await _run(url, workload, queues, Path(tmp), audit, within, fast_path, batching or BatchSettings(),
                          templates)


async def _run(url: str, workload: Workload, queues: QueueSet, state_dir: Path, audit: bool,
               within: float, fast_path: bool, batching: BatchSettings, templates: bool) -> SideResult:
    connection = await aio_pika.connect(url, client_properties={"connection_name": "renkei-bench-loader"})
    try:
        await preload(await connection.channel(publisher_confirms=True), queues.input, workload.messages)
    finally:
        await connection.close()

    catalog = Catalog.load()
    routes = RouteTable.load(routes_dir(), catalog)
    for kind in {r.projection.kind for r in routes.routes}:
        catalog.get(kind).xml_schema  # noqa: B018 - compiled before the clock, as in a running bus
    broker = AmqpBroker(url, fast_path=fast_path)
    state = StateStore(state_dir / "state.sqlite")
    trail = AuditLog.open(Settings(bus=BusSettings(state_dir=state_dir))) if audit else None
    recorder = AuditRecorder(trail, inline=batching.inline_for(embedded=False)) if trail is not None else None
    counters = CountingHooks(state)
    hooks = Hooks(*([AuditHooks(recorder)] if recorder is not None else []), counters, LoggingHooks())
    deliveries = DeliveryStore(state_dir / "delivery.sqlite")
    line = ResidentLine(deliveries, ROUTE_STAGE, hooks)
    router = RouteStage(broker, catalog, routes, state, line, hooks=hooks, queue_of=queues.output,
                        fast_path=templates)
    dispatcher = Dispatcher(router, hooks, line, poison_after=5)
    meter = Meter(len(workload))

    async def handle(batch: Sequence[Delivery]) -> list[bool]:
        meter.start()
        answers = await dispatcher.handle(batch)
        for _ in batch:  # settled (acked) by the broker right after: its outputs are confirmed
            meter.finish()
        return answers

    try:
        await broker.connect()
        consumer = await broker.consume_batches(queues.input, handle, concurrency=ROUTER_CONCURRENCY,
                                                batch_size=batching.batch_size, linger=batching.linger_ms / 1000,
                                                prefetch=batching.router_prefetch)
        try:
            await meter.wait(within)
        finally:
            await consumer.cancel()  # returns when every delivery is settled (acked)
            await router.aclose()
            await counters.aclose()
        depths = {q: (await broker.stats(q)).ready for q in queues.all}
        routed = state.counters("destination")
        audited = 0
        if recorder is not None and trail is not None:
            await recorder.aclose()  # every routed event is in the trail
            audited = sum(len(split(r.event)) for r in trail.store.records())  # a destination each
    finally:
        await broker.close()
        state.close()
        deliveries.close()
        if trail is not None:
            trail.close()
    outputs = sum(depths[q] for q in queues.outputs.values())
    counted = sum(c.get("routed", 0) for c in routed.values())
    if counted != outputs or (audit and audited != outputs):
        raise RuntimeError(f"renkei counted {counted} routed outputs and audited {audited}, "
                           f"but the queues hold {outputs}")
    return SideResult("renkei", len(workload), meter.seconds, meter.cpu_seconds, meter.done_count, outputs,
                      depths[queues.input])
