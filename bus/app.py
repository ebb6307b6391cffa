"""The bus, assembled: broker, state, catalog, routes, intake, router and deliverers.

`Bus` is what `renkei run` and `renkei demo` start; tests start it too. Nothing here is a
module-level global: settings and, optionally, ready-made sinks are passed in.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from adapters.base import Sink
from adapters.registry import build_sink
from bus.audit.hooks import AuditDeliveryEvents
from bus.audit.log import AuditLog
from bus.audit.recorder import AuditRecorder
from bus.brokers import broker_for
from bus.brokers.base import Broker, Consumer
from bus.catalog import Catalog
from bus.config_check import check_destinations
from bus.delivery.deliverer import Deliverer
from bus.delivery.store import DeliveryStore
from bus.intake import INTAKE_QUEUE, BusIntake
from bus.logs import get_logger
from bus.masking import Pseudonymizer
from bus.paths import routes_dir
from bus.pipeline import Router, destination_queue
from bus.routing.router import RouteTable
from bus.settings import Settings
from bus.state import StateStore
from bus.tenants import Gate, SourceBinding, Sources, Tenancy, TenantGuardSink
from bus.validation.validator import Limits

__all__ = ["Bus", "BusParts", "sources_of"]

log = get_logger("renkei.bus")


def sources_of(settings: Settings) -> Sources:
    """The [sources] of `settings` as the gate checks them."""
    return Sources(SourceBinding(s.id, frozenset(s.municipalities), s.token_sha256s, s.inbox, s.amqp_user)
                   for s in settings.sources.values())


@dataclass
class BusParts:
    """What `Bus.start` may run; a process can run any subset (scale out by role)."""

    router: bool = True
    deliverers: bool = True
    only_destinations: frozenset[str] | None = None


@dataclass
class Bus:
    settings: Settings
    sinks: dict[str, Sink] = field(default_factory=dict)
    catalog: Catalog = field(default_factory=Catalog.load)

    def __post_init__(self) -> None:
        state_dir = self.settings.bus.state_dir
        self.broker: Broker = broker_for(self.settings)
        self.state = StateStore(state_dir / "state.sqlite")
        self.deliveries = DeliveryStore(state_dir / "delivery.sqlite")
        self.audit = AuditLog.open(self.settings)
        self.recorder = AuditRecorder(self.audit)  # batched; each stage flushes before its ack
        self.routes = RouteTable.load(self.settings.bus.routes_dir or routes_dir(), self.catalog)
        check_destinations(self.settings, (route.destination for route in self.routes.routes))
        self.tenancy = Tenancy(self.settings.destinations, strict=self.settings.multi_tenant)
        self.gate = Gate(sources_of(self.settings), recorder=self.recorder, state=self.state)
        self.intake = BusIntake(
            self.broker,
            self.catalog,
            self.state,
            Pseudonymizer(self.settings.bus.pseudonym_key),
            limits=Limits(max_bytes=self.settings.bus.max_message_bytes),
            municipalities=self.settings.bus.municipalities,
            recorder=self.recorder,
            gate=self.gate,
            previous_pseudonyms=[Pseudonymizer(k) for k in self.settings.audit.previous_pseudonym_keys],
        )
        self._consumers: list[Consumer] = []
        self._built_sinks: list[Sink] = []
        #: the queues this process consumes, once started (read by `renkei status` reports)
        self.consumed_queues: list[str] = []

    @property
    def destinations(self) -> list[str]:
        """Every destination a route can address, configured with a sink or not (with tenancy:
        the configured destinations of each route's system, bus.tenants.Tenancy)."""
        return self.tenancy.addressable(route.destination for route in self.routes.routes)

    async def connect(self) -> None:
        """Connect and declare every queue (messages wait for a destination without a sink).
        Dead letters are not a queue: they live in the delivery store (`self.deliveries`)."""
        await self.broker.connect()
        for queue in (INTAKE_QUEUE, *map(destination_queue, self.destinations)):
            await self.broker.declare(queue)

    def reload_sources(self, settings: Settings) -> None:
        """Take `settings`' [sources] (tokens, municipalities, broker users) from now on: the
        next request is checked against them. Inboxes are watched as they were at start."""
        self.gate.sources = sources_of(settings)

    async def start(self, parts: BusParts | None = None) -> None:
        parts = parts or BusParts()
        await self.connect()
        if parts.router:
            router = Router(self.broker, self.catalog, self.routes, self.state, recorder=self.recorder,
                            tenancy=self.tenancy)
            self._consumers.append(await self.broker.consume(INTAKE_QUEUE, router.handle, concurrency=32))
            self.consumed_queues.append(INTAKE_QUEUE)
        if parts.deliverers:
            for name, sink in self._build_sinks(parts.only_destinations).items():
                config = self.settings.destinations.get(name)
                sink = TenantGuardSink(sink, name, self.tenancy)  # the last line: never another municipality's
                deliverer = Deliverer(self.broker, self.catalog, self.state, self.deliveries, name, sink,
                                      policy=self.settings.retry_of(name),
                                      events=AuditDeliveryEvents(self.recorder))
                await deliverer.resume()
                concurrency = config.concurrency if config else 8
                consumer = await self.broker.consume(destination_queue(name), deliverer.handle,
                                                     concurrency=concurrency)
                self._consumers.append(consumer)
                self.consumed_queues.append(destination_queue(name))
        log.info("bus started", broker=self.broker.name, destinations=len(self.destinations),
                 consumers=len(self._consumers))

    def _build_sinks(self, only: frozenset[str] | None) -> dict[str, Sink]:
        sinks: dict[str, Sink] = {}
        for name, config in self.settings.destinations.items():
            if name not in self.sinks and (only is None or name in only):
                sinks[name] = build_sink(config.transport, {"destination": name, **config.options})
        self._built_sinks.extend(sinks.values())
        sinks.update(self.sinks)
        unknown = sorted(set(sinks) - set(self.destinations))
        if unknown:
            log.warning("sinks configured for destinations no route addresses", destinations=unknown)
        return {k: v for k, v in sinks.items() if only is None or k in only}

    async def stop(self) -> None:
        """Let in-flight handlers finish, then close the sinks the bus built, the broker and the state."""
        for consumer in reversed(self._consumers):
            await consumer.cancel()
        self._consumers.clear()
        self.consumed_queues.clear()
        for sink in self._built_sinks:  # sinks passed in belong to the caller
            close = getattr(sink, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # closing is best effort; nothing is in flight any more
                    log.warning("closing a sink failed", error=repr(exc))
        self._built_sinks.clear()
        await self.broker.close()
        await self.recorder.aclose()
        self.audit.checkpoint()  # sign the head the bus leaves (no-op without a signing key)
        self.audit.close()
        self.state.close()
        self.deliveries.close()

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def wait_idle(self, within: float = 60.0, poll: float = 0.05) -> bool:
        """Wait until every queue is empty, nothing is in flight and no resident waits for a
        retry (dead letters wait for an operator: they do not count)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        queues = [INTAKE_QUEUE, *map(destination_queue, self._consumed_destinations())]
        while loop.time() < deadline:
            stats = [await self.broker.stats(q) for q in queues]
            waiting = [p for p in self.deliveries.parked_all() if p.status != "dead"]
            if all(s.ready == 0 and s.in_flight == 0 for s in stats) and not waiting:
                return True
            await asyncio.sleep(poll)
        return False

    def _consumed_destinations(self) -> list[str]:
        return sorted(set(self.settings.destinations) | set(self.sinks))
