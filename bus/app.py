"""The bus, assembled: broker, stores, catalog, routes, the stages and their middleware, and the
sources that feed it. This is the one place the hallway is wired (bus.stages draws it):

    sources (front doors) ─▶ gate ─▶ intake ─▶ renkei.intake ─▶ route+project ─▶ renkei.dest.* ─▶ deliver ─▶ sinks
    hooks: audit trail, counters, log — registered here, once, for every stage

`Bus` is what `renkei run` and `renkei demo` start; tests start it too. Nothing here is a
module-level global: settings and, optionally, ready-made sinks and sources are passed in.
It is the only module of the core that knows the adapters (it builds sinks and sources from
the settings); the stages know only the ports (bus.ports).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.registry import build_sink, sink_options
from adapters.sources.amqp_intake import AmqpIntakeSource, vhost_url
from adapters.sources.directory import Inbox
from bus.audit.hooks import AuditHooks
from bus.audit.log import AuditLog
from bus.audit.recorder import AuditRecorder
from bus.brokers import broker_for, broker_tls
from bus.brokers.amqp import AmqpBroker
from bus.brokers.amqp.topology import ShardGroup
from bus.brokers.base import Broker, Consumer
from bus.catalog import Catalog
from bus.config_check import check_destinations, check_pins, pins_of
from bus.errors import ConfigError
from bus.heap import limit_malloc_arenas
from bus.logs import get_logger
from bus.masking import Pseudonymizer
from bus.paths import routes_dir
from bus.ports import Sink, Source, prepare_sink
from bus.routing.router import RouteTable
from bus.routing.support import support_gaps
from bus.settings import Settings
from bus.stages import (
    CountingHooks,
    Decoded,
    DeliverStage,
    Dispatcher,
    Gate,
    Hooks,
    IntakeStage,
    LoggingHooks,
    ResidentLine,
    RouteStage,
    StageHooks,
    TenantGuardSink,
)
from bus.tasks import stop_task
from bus.tenancy import SourceBinding, Sources, Tenancy
from bus.topology import INTAKE_QUEUE, ROUTE_STAGE, destination_queue
from bus.validation.validator import Limits

__all__ = ["Bus", "BusParts", "front_doors", "sources_of"]

log = get_logger("renkei.bus")

#: with a shared state store, how often each stage looks for a release a killed process left
#: unfinished (bus.stages.order: a resident `releasing` that no process claims)
RESUME_EVERY = 5.0


def _shard_group(text: str) -> ShardGroup:
    try:
        return ShardGroup.parse(text)
    except ValueError as exc:
        raise ConfigError(f"--shard-group: {exc}") from None


def sources_of(settings: Settings) -> Sources:
    """The [sources] of `settings` as the gate checks them."""
    return Sources(SourceBinding(s.id, frozenset(s.municipalities), s.token_sha256s, s.inbox, s.amqp_user)
                   for s in settings.sources.values())


def front_doors(settings: Settings, catalog: Catalog, probes: Sequence[Any] = ()) -> list[Source]:
    """The sources `settings` declares: the HTTP intake (serving `probes` too: /metrics, /healthz,
    /readyz, bus.console.probes), every inbox, every AMQP vhost intake."""
    # here, not at the top: a process without the intake (a router or deliverer of `renkei run --role`,
    # `renkei demo`'s children) does not load the HTTP server (uvicorn, starlette: ~3 MB each)
    from adapters.sources.http_intake import HttpIntake

    intake = settings.intake
    tls = (str(intake.tls_cert_file), str(intake.tls_key_file)) if intake.tls_cert_file else None
    doors: list[Source] = [HttpIntake(intake.http_host, intake.http_port, max_body=settings.bus.max_message_bytes,
                                      tls=tls, where=str(settings.source_file) if settings.source_file else None,
                                      header_timeout=intake.http_header_timeout, body_timeout=intake.http_body_timeout,
                                      max_connections=intake.http_max_connections, catalog=catalog,
                                      probes=probes)]
    inboxes = [(s.inbox, s.id) for s in settings.sources.values() if s.inbox is not None]
    if intake.inbox is not None:
        inboxes.append((intake.inbox, "directory"))
    doors += [Inbox(inbox, source_id, catalog=catalog, max_size=settings.bus.max_message_bytes,
                    state_dir=settings.bus.state_dir)
              for inbox, source_id in inboxes]
    for municipality, vhost in sorted(intake.amqp_vhosts.items()):
        assert settings.bus.broker_url is not None  # settings check it
        doors.append(AmqpIntakeSource(vhost_url(settings.bus.broker_url, vhost), municipality,
                                      queue=intake.amqp_queue, ssl_context=broker_tls(settings)))
    return doors


@dataclass
class BusParts:
    """What `Bus.start` may run; a process can run any subset (scale out by role)."""

    router: bool = True
    deliverers: bool = True
    only_destinations: frozenset[str] | None = None
    #: open the front doors the settings declare (`front_doors`), before anything is consumed
    sources: bool = False
    #: RabbitMQ with `[bus] shards`: "k/n", the shards this process takes first (the others it
    #: stands by for; bus.brokers.amqp.topology.ShardGroup), or "auto/n": the first k free among
    #: the processes of this role sharing the `[state] store`. None: every shard at once.
    shard_group: str | None = None
    #: routes the HTTP intake serves too (`renkei run`: /metrics, /healthz, /readyz)
    probes: Sequence[Any] = ()


@dataclass
class Bus:
    settings: Settings
    sinks: dict[str, Sink] = field(default_factory=dict)
    catalog: Catalog = field(default_factory=Catalog.load)
    #: sources to open at start beside those of the settings (tests, embedding programs)
    sources: Sequence[Source] = ()
    #: more middleware, heard after the trail, the counters and the log (renkei run: its probes'
    #: latency histogram, bus.console.probes)
    watchers: Sequence[StageHooks] = ()

    def __post_init__(self) -> None:
        limit_malloc_arenas()  # before the bus starts its threads (bus.heap)
        self.broker: Broker = broker_for(self.settings)
        self.state = self.settings.state_files.open_state()  # SQLite in state_dir, or the shared [state] store
        self.deliveries = self.settings.state_files.open_delivery()
        self.audit = AuditLog.open(self.settings)
        self.recorder = AuditRecorder(self.audit,  # batched; each stage flushes before its ack
                                      join_routed=self.settings.audit.routed_records == "per_change",
                                      inline=self.settings.batching.inline_for(
                                          embedded=self.broker.name == "embedded"))
        #: the middleware every stage reports to, in order: audit trail, counters, log
        self.counters = CountingHooks(self.state)  # group-committed; closed by `stop`
        self.hooks = Hooks(AuditHooks(self.recorder), self.counters, LoggingHooks(), *self.watchers)
        self.routes = RouteTable.load(self.settings.bus.routes_dir or routes_dir(), self.catalog)
        check_destinations(self.settings, (route.destination for route in self.routes.routes), sink_options)
        check_pins(self.settings, self.routes.routes, self.catalog.versions)
        self.tenancy = Tenancy(self.settings.destinations, strict=self.settings.multi_tenant)
        self.gate = Gate(sources_of(self.settings), self.hooks)
        self.intake = IntakeStage(
            self.broker,
            self.catalog,
            self.state,
            Pseudonymizer(self.settings.bus.pseudonym_key),
            limits=Limits(max_bytes=self.settings.bus.max_message_bytes),
            municipalities=self.settings.bus.municipalities,
            hooks=self.hooks,
            gate=self.gate,
            previous_pseudonyms=[Pseudonymizer(k) for k in self.settings.audit.previous_pseudonym_keys],
        )
        self._consumers: list[Consumer] = []
        self._built_sinks: list[Sink] = []
        self._route_stages: list[RouteStage] = []
        self._resumers: list[asyncio.Task[None]] = []
        self._doors = contextlib.AsyncExitStack()
        #: the sources open now (their `url` and the like tell where they listen)
        self.opened_sources: list[Source] = []
        #: the queues this process consumes, once started (read by `renkei status` reports)
        self.consumed_queues: list[str] = []

    @property
    def destinations(self) -> list[str]:
        """Every destination a route can address, configured with a sink or not (with tenancy:
        the configured destinations of each route's system, bus.tenancy.Tenancy)."""
        return self.tenancy.addressable(route.destination for route in self.routes.routes)

    async def connect(self) -> None:
        """Connect and declare every queue (messages wait for a destination without a sink).
        Dead letters are not a queue: they live in the delivery store (`self.deliveries`)."""
        await self.broker.connect()
        # a configured destination no route addresses (the 中間サーバー, fed by the 団体内統合宛名
        # function) gets its queue too: its deliverer then waits on an empty queue
        routed = set(self.destinations)
        unrouted = [d for d in self._consumed_destinations() if d not in routed]
        for queue in (INTAKE_QUEUE, *map(destination_queue, [*self.destinations, *unrouted])):
            await self.broker.declare(queue)

    def reload_sources(self, settings: Settings) -> None:
        """Take `settings`' [sources] (tokens, municipalities, broker users) from now on: the
        next request is checked against them. Inboxes are watched as they were at start."""
        self.gate.sources = sources_of(settings)

    async def start(self, parts: BusParts | None = None) -> None:
        """Connect, open the sources, then consume: a source that cannot open (a port taken, a
        broker refusing) raises before anything is routed or delivered, and the bus is left
        stopped as it was."""
        parts = parts or BusParts()
        self._prefer_shards(parts)
        await self.connect()
        try:
            doors = front_doors(self.settings, self.catalog, parts.probes) if parts.sources else []
            sources = [*self.sources, *doors]
            for source in sources:
                await self._doors.enter_async_context(source.open(self.intake, self.gate))
                self.opened_sources.append(source)
        except BaseException:
            await self._close_doors()
            raise
        if parts.router:
            await self._start_router()
        if parts.deliverers:
            for name, sink in self._build_sinks(parts.only_destinations).items():
                await self._start_deliverer(name, sink)
        gaps = support_gaps(self.routes.routes, self.catalog, pins_of(self.settings),
                            {n: c.system for n, c in self.settings.destinations.items() if c.system})
        if gaps:  # visible, not silent: these learn of a 支援措置 only from jumin.shien (or never)
            log.warning("destinations take resident changes without 支援措置 (support_measure)",
                        destinations=[f"{g.destination} {g.kind} v{g.version}" for g in gaps],
                        without_jumin_shien=[g.destination for g in gaps if g.support_route is None])
        log.info("bus started", broker=self.broker.name, destinations=len(self.destinations),
                 consumers=len(self._consumers), sources=len(self.opened_sources))

    async def _start_router(self) -> None:
        routes = self.routes.routes  # the kinds it takes and makes, compiled before any change waits for them
        self.catalog.compile_schemas({r.takes for r in routes} | {r.projection.kind for r in routes})
        line = ResidentLine(self.deliveries, ROUTE_STAGE, self.hooks)
        decoded = Decoded() if self.settings.bus.route_fast_path else None
        self.intake.hand_records_to(decoded)  # this process's intake parses a change once, for both stages
        stage = RouteStage(self.broker, self.catalog, self.routes, self.state, line, hooks=self.hooks,
                           tenancy=self.tenancy, pins=pins_of(self.settings),
                           fast_path=self.settings.bus.route_fast_path, decoded=decoded)
        await stage.resume()
        self._resume_periodically(stage.resume)
        dispatcher = Dispatcher(stage, self.hooks, line, poison_after=self.settings.retry.poison_after)
        self._consumers.append(await self.broker.consume_batches(INTAKE_QUEUE, dispatcher.handle, concurrency=32,
                                                                 prefetch=self.settings.batching.router_prefetch_for(
                                                                     embedded=self.broker.name == "embedded"),
                                                                 **self._batching()))
        self._route_stages.append(stage)
        self.consumed_queues.append(INTAKE_QUEUE)

    async def _start_deliverer(self, name: str, sink: Sink) -> None:
        config = self.settings.destinations.get(name)
        policy = self.settings.retry_of(name)
        line = ResidentLine(self.deliveries, name, self.hooks)
        prepare_sink(sink)  # its client made now, not in the first delivery's time
        guarded = TenantGuardSink(sink, name, self.tenancy)  # the last line: never another municipality's
        stage = DeliverStage(self.broker, self.catalog, line, guarded, policy=policy, hooks=self.hooks)
        await stage.resume()
        self._resume_periodically(stage.resume)
        dispatcher = Dispatcher(stage, self.hooks, line, poison_after=policy.poison_after)
        await self.broker.expect_delays(destination_queue(name))  # its retries come back, whoever delayed them
        consumer = await self.broker.consume_batches(destination_queue(name), dispatcher.handle,
                                                     concurrency=config.concurrency if config else 8,
                                                     **self._batching())
        self._consumers.append(consumer)
        self.consumed_queues.append(destination_queue(name))

    def _batching(self) -> dict[str, Any]:
        """How the stages take deliveries from the broker ([bus] batch_size, batch_linger_ms)."""
        batching = self.settings.batching
        return {"batch_size": batching.batch_size, "linger": batching.linger_ms / 1000}

    def _prefer_shards(self, parts: BusParts) -> None:
        """Give the broker this process's shard group (bus.brokers.amqp.topology.ShardGroup)."""
        if parts.shard_group is None or not isinstance(self.broker, AmqpBroker):
            return  # the embedded broker: one process, no shards
        text = parts.shard_group.strip()
        if not text.startswith("auto/"):
            self.broker.shard_group = _shard_group(text)
            return
        of = _shard_group(text.replace("auto/", "0/")).of
        if not self.settings.state_files.shared:
            raise ConfigError("--shard-group auto/N needs the shared [state] store (PostgreSQL): the processes "
                              "sharing the shards take their numbers there; give k/N instead")
        role = "router" if parts.router else "deliver:" + ",".join(sorted(parts.only_destinations or ("*",)))
        # a slot is held for the life of this process's store connection (a killed process frees it)
        index = next((k for k in range(of) if self.deliveries.claim(f"slot:{role}", str(k))), of)
        self.broker.shard_group = ShardGroup(index, of)
        log.info("shard group", role=role, group=str(self.broker.shard_group))

    def _resume_periodically(self, resume: Callable[[], Awaitable[None]]) -> None:
        """With a shared store, finish every RESUME_EVERY seconds the releases that processes
        killed since left (their shards and residents are this process's now, or another's)."""
        if not self.settings.state_files.shared:
            return  # one process per state file: what it left, it resumes when it starts

        async def loop() -> None:
            while True:
                await asyncio.sleep(RESUME_EVERY)
                try:
                    await resume()
                except Exception as exc:  # the next round tries again; the store may be back
                    log.warning("resuming releases failed", error=type(exc).__name__)

        self._resumers.append(asyncio.get_running_loop().create_task(loop(), name="resumer"))

    async def _close_doors(self) -> None:
        """Stop taking messages (each source finishes the one it is taking)."""
        try:
            await self._doors.aclose()
        finally:
            self._doors = contextlib.AsyncExitStack()
            self.opened_sources.clear()

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
        """Stop taking messages, let in-flight handlers finish, then close the sinks the bus built,
        the broker and the state."""
        await self._close_doors()
        await self.intake.aclose()
        await asyncio.gather(*(stop_task(t) for t in self._resumers))  # a resume publishes: bus.tasks
        self._resumers.clear()
        for consumer in reversed(self._consumers):
            await consumer.cancel()
        self._consumers.clear()
        self.consumed_queues.clear()
        for stage in self._route_stages:
            await stage.aclose()
        self._route_stages.clear()
        for sink in self._built_sinks:  # sinks passed in belong to the caller
            close = getattr(sink, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # closing is best effort; nothing is in flight any more
                    log.warning("closing a sink failed", error=repr(exc))
        self._built_sinks.clear()
        await self.broker.close()
        await self.counters.aclose()
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
            if await self.broker.drained(queues):  # cheap whatever the backlog: asked every `poll`
                waiting = [p for p in self.deliveries.parked_all() if p.status != "dead"]
                if not waiting:
                    return True
            await asyncio.sleep(poll)
        return False

    def _consumed_destinations(self) -> list[str]:
        return sorted(set(self.settings.destinations) | set(self.sinks))
