"""`renkei run`: run the bus from a config file until SIGINT or SIGTERM.

    renkei run --config renkei.toml                      # everything in one process
    renkei run --config renkei.toml --with-simulators    # plus the simulators (a process of
                                                         # their own), on the ports of the
                                                         # destination URLs
    renkei run --config renkei.toml --role router        # intake + router only
    renkei run --config renkei.toml --role deliver --destination zei --destination kokuho

Roles scale the bus out: `all` (default) runs the intake ([intake] http_host/http_port, and
the directory source when [intake] inbox is set), the router and every destination's
deliverer; `router` runs the intake and the router; `deliver` runs deliverers only (all
configured destinations, or those named by --destination); `console` runs the web console
only (bus.console; `all` runs it too when `[console] enabled = true`, on its own port).

The production shape on one host is two processes on one config (one state directory, the
embedded broker's file shared): `--role router` (the intake and the router) and `--role
deliver` (every deliverer). Each has an event loop, and so a core, of its own; one process
does all its Python work on one loop (issue 10, bench/README.md "`renkei run` latency").
A deliverer sees the router's publishes within the embedded broker's poll of the file
(50 ms), at once on RabbitMQ.

Tenants (docs/tenants.md): with `[sources.<id>]` the HTTP intake needs each source's bearer
token, each source's `inbox` gets its own directory source, and `[intake] amqp_vhosts` starts
one AMQP intake per municipality vhost; `[intake] tls_cert_file`/`tls_key_file` serve https.

Metrics and health (docs/console.md): every process serves /metrics, /healthz and /readyz —
on the console's port where the console runs in it, else on the HTTP intake's port (roles all
and router), else (a deliverer) on `[bus] health_host:health_port` (default 127.0.0.1:9464;
0: none; a port in use is said and the process runs without it). /readyz includes the audit
chain's strict verification (bus.audit.watch).

Stopping (SIGINT/SIGTERM): the intake stops taking messages (a request being answered is
answered), the directory source finishes its file, the consumers let their running
handlers finish and requeue what has not started, then the broker closes. Exit status 0.
A configuration mistake exits 2 with one line saying what and where; a broker that cannot
be reached at start exits 1.

Reloading (SIGHUP): the config file is read again and its [sources] (tokens, municipalities,
broker users) apply from the next request on, so a source's token is rotated without a
restart (docs/tenants.md). A file that does not load changes nothing and says why; inboxes,
routes, destinations and the rest change only with a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import click

from adapters.server import EmbeddedServer
from adapters.simulators import SYSTEMS
from adapters.simulators.apart import SimulatorProcess
from adapters.sources.amqp_intake import AmqpIntakeSource
from adapters.sources.directory import Inbox
from adapters.sources.http_intake import HttpIntake
from bus.app import Bus, BusParts
from bus.cli.config import CONFIG_ERROR, RUNTIME_ERROR, load_settings
from bus.errors import BrokerError, ConfigError
from bus.heap import settle_heap
from bus.logs import configure_logging, get_logger
from bus.settings import Settings
from bus.status import ProcessReporter, display_url

__all__ = ["run", "simulator_ports"]

Role = Literal["all", "router", "deliver", "console"]
log = get_logger("renkei.run")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command("run")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The bus's renkei.toml (RENKEI_* environment variables override it).")
@click.option("--with-simulators", is_flag=True,
              help="Also run the simulators (in a process of their own, stopped with the bus) on the ports of "
                   "the destinations' URLs.")
@click.option("--role", type=click.Choice(["all", "router", "deliver", "console"]), default="all", show_default=True,
              help="all: intake, router and deliverers; router: intake and router; deliver: deliverers; "
                   "console: the web console only ([console] in CONFIG; `all` runs it too when enabled).")
@click.option("--destination", "destinations", multiple=True, metavar="NAME",
              help="With --role all|deliver: deliver to these destinations only (repeatable).")
@click.option("--shard-group", "shard_group", envvar="RENKEI_SHARD_GROUP", metavar="K/N|auto/N",
              help="RabbitMQ with [bus] shards: this process takes the shards i with i % N == K first and stands "
                   "by for the others (N processes of one role split the shards); auto/N: the first free K "
                   "among the processes sharing the [state] store. Env RENKEI_SHARD_GROUP.")
def run(config: Path, with_simulators: bool, role: Role, destinations: tuple[str, ...],
        shard_group: str | None) -> None:
    """Run the bus of CONFIG until interrupted (SIGINT or SIGTERM stop it gracefully).

    Exit status: 0 stopped by SIGINT or SIGTERM, 1 the broker cannot be reached, 2 a
    configuration mistake (one line naming file:line) or a port that cannot be listened on."""
    settings = load_settings("run", config)
    if destinations and role == "router":
        click.echo("renkei run: error: --destination applies to --role all or deliver", err=True)
        raise SystemExit(CONFIG_ERROR)
    configure_logging(settings.logging.format, settings.logging.level)
    runner = _Runner(settings, role=role, only=frozenset(destinations) or None, with_simulators=with_simulators,
                     shard_group=shard_group)
    raise SystemExit(asyncio.run(runner.main()))


class _Failed(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def simulator_ports(settings: Settings, destinations: list[str]) -> dict[str, int]:
    """destination → port of the simulator `--with-simulators` starts for it (HTTP sinks only)."""
    ports: dict[str, int] = {}
    for name in destinations:
        config = settings.destinations.get(name)
        if config is None or config.transport != "http":
            continue
        where = f"[destinations.{name}] url"
        if name not in SYSTEMS:
            raise ConfigError(f"--with-simulators: there is no simulator for destination {name!r} "
                              f"(simulators: {', '.join(SYSTEMS)})", where=str(settings.source_file))
        parts = urlsplit(str(config.options.get("url", "")))
        if parts.scheme != "http" or parts.hostname not in _LOOPBACK or parts.path.rstrip("/") != "/messages":
            raise ConfigError(f"--with-simulators: {where} must be http://127.0.0.1:PORT/messages "
                              f"(the simulators run on this machine), got {config.options.get('url')!r}",
                              where=str(settings.source_file))
        ports[name] = parts.port or 80
    used = [*ports.values(), settings.intake.http_port]
    shared = sorted({p for p in used if p and used.count(p) > 1})
    if shared:
        raise ConfigError(f"--with-simulators: two servers would listen on port {shared[0]}",
                          where=str(settings.source_file))
    return ports


class _Runner:
    def __init__(self, settings: Settings, *, role: Role, only: frozenset[str] | None,
                 with_simulators: bool, shard_group: str | None = None) -> None:
        self.settings = settings
        self.shard_group = shard_group
        self.role = role
        self.only = only
        self.with_simulators = with_simulators
        self.stopping = asyncio.Event()
        self.bus: Bus | None = None

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._reload_sources)
        async with contextlib.AsyncExitStack() as stack:
            try:
                await self._start(stack)
            except _Failed as failed:
                click.echo(f"renkei run: error: {failed}", err=True)
                return failed.code
            except ConfigError as exc:
                click.echo(f"renkei run: error: {exc}", err=True)
                return CONFIG_ERROR
            _say("ready (SIGINT or SIGTERM stops the bus; SIGHUP reloads [sources] and their tokens)")
            await self.stopping.wait()
            _say("stopping: no new messages; letting those in flight finish")
        _say("stopped")
        return 0

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stopping.is_set():
            return  # already stopping: in-flight work is finishing
        log.info("signal received, stopping", signal=sig.name)
        self.stopping.set()

    def _reload_sources(self) -> None:
        """SIGHUP: read the config file again and take its [sources] (tokens, municipalities,
        broker users) from the next request on; a token is rotated without a restart. A file
        that does not load changes nothing. Inboxes and everything else are as at start."""
        bus, path = self.bus, self.settings.source_file
        if bus is None or self.stopping.is_set():
            return
        if path is None:
            _say("reload: no --config file to read again; nothing changed")
            return
        try:
            fresh = Settings.load(path)
        except ConfigError as exc:
            log.warning("sources not reloaded", error=str(exc))
            _say(f"reload refused, the sources stay as they were: {exc}")
            return
        before, after = self.settings.sources, fresh.sources
        restart = sorted(set(before) ^ set(after)) + sorted(
            n for n in set(before) & set(after) if before[n].inbox != after[n].inbox)
        bus.reload_sources(fresh)
        tokens = sum(len(s.token_sha256s) for s in after.values())
        log.info("sources reloaded", sources=len(after), tokens=tokens)
        _say(f"reloaded [sources] from {path}: {_count(len(after), 'source')}, {_count(tokens, 'token')}"
             + (f"; the inboxes of {', '.join(restart)} change only with a restart" if restart else ""))

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        from bus.cli.console import start_with_bus  # the web console (issue 14): off unless [console] enabled
        from bus.console import console_options
        from bus.console.probes import BusProbes

        settings = self.settings
        if self.role == "console":
            stop_console = await start_with_bus(settings, say=_say, force=True)
            assert stop_console is not None  # forced on
            stack.push_async_callback(stop_console)
            return
        # /metrics, /healthz, /readyz: the console's port serves them where it runs in this process;
        # else the intake's port (router, all) or [bus] health_port (a deliverer)
        probes = None
        if not (self.role == "all" and console_options(settings).enabled):
            probes = BusProbes(settings, serve=EmbeddedServer,
                               destinations=lambda: self.bus.destinations if self.bus is not None else ())
        # loads the catalog and the routes: a ConfigError says file:line
        bus = self.bus = Bus(settings, watchers=[probes.latency] if probes is not None else [])
        simulators: list[SimulatorProcess] = []
        stack.push_async_callback(_stop_all, simulators)  # last: deliveries in flight reach them
        stack.push_async_callback(bus.stop)
        known = sorted(set(bus.destinations) | set(settings.destinations))
        unknown = sorted((self.only or set()) - set(known))
        if unknown:
            raise _Failed(f"--destination {', '.join(unknown)}: no route or [destinations] table addresses it "
                          f"(known: {', '.join(known)})", CONFIG_ERROR)
        delivers = self.role in ("all", "deliver")
        routes = self.role in ("all", "router")
        delivered = sorted(n for n in settings.destinations if self.only is None or n in self.only)
        if self.with_simulators and delivers:
            await self._start_simulators(simulators, simulator_ports(settings, delivered))
        url = settings.bus.broker_url
        broker = display_url(url) if url else f"embedded ({settings.bus.state_dir / 'broker.sqlite'})"
        try:
            await bus.start(BusParts(router=routes, deliverers=delivers, only_destinations=self.only, sources=routes,
                                     shard_group=self.shard_group,
                                     probes=probes.routes() if probes is not None and routes else ()))
        except BrokerError as exc:
            raise _Failed(f"cannot use the broker {broker}: {exc}", RUNTIME_ERROR) from exc
        settle_heap()  # everything the process keeps is loaded: freeze it, collect less often
        _say(f"broker {broker}, state in {settings.bus.state_dir}, role {self.role}")
        if settings.uses_development_key:
            _say("warning: the development pseudonym key is in use; set RENKEI_PSEUDONYM_KEY (or "
                 "[bus] pseudonym_key_file) in production")
        unserved = bus.tenancy.unaddressed(r.destination for r in bus.routes.routes) if bus.tenancy.strict else []
        if unserved:
            _say(f"tenancy: no destination is configured for {', '.join(unserved)}; changes routed there go "
                 "nowhere (one queue for every municipality would mix them)")
        intake_url = self._say_sources(bus)
        if delivers:
            without = sorted(set(bus.destinations) - set(settings.destinations))
            _say(f"delivering to {', '.join(delivered) or 'no destination'}"
                 + (f"; no sink configured for {', '.join(without)} (their messages wait in the queue)"
                    if without and self.only is None else ""))
        reporter = ProcessReporter(bus.broker, bus.consumed_queues, settings.bus.state_dir, role=self.role,
                                   intake=intake_url)
        await reporter.start()
        stack.push_async_callback(reporter.stop)
        if probes is not None:
            said = await probes.start(listen=intake_url is None)
            stack.push_async_callback(probes.stop)
            if said:
                _say(said)
            elif intake_url is not None:
                _say(f"metrics and health on the intake's port ({intake_url.removesuffix('/v1/messages')}/metrics, "
                     "/healthz, /readyz)")
            audit = settings.audit
            if probes.monitor.options.ready_strict_audit and (audit.signing_key is None or audit.witness is None):
                _say("note: /readyz answers 503 while the audit trail cannot be proven: configure [audit] "
                     "signing_key_file and witness (or [console] ready_strict_audit = false)")
        stop_console = await start_with_bus(settings, bus, say=_say) if self.role == "all" else None
        if stop_console is not None:
            stack.push_async_callback(stop_console)

    def _say_sources(self, bus: Bus) -> str | None:
        """One line per open source; the HTTP intake's URL (for the process report)."""
        url = None
        for source in bus.opened_sources:
            if isinstance(source, HttpIntake):
                url = source.url
                _say(f"intake listening on {url}" + ("" if bus.gate.enforced else
                     " (open: no [sources] configured, any caller is taken on trust; development only)"))
            elif isinstance(source, Inbox):
                _say(f"inbox {source.inbox} (source {source.source})")
            elif isinstance(source, AmqpIntakeSource):
                _say(f"AMQP intake of {source.municipality}: queue {source.queue}")
        return url

    async def _start_simulators(self, started: list[SimulatorProcess], ports: dict[str, int]) -> None:
        """The destinations' simulators, in a process of their own (adapters.simulators.apart), each
        on the port of its destination's URL: they stand for other systems, and their work (each
        message validated, as a receiving system would) is not the bus's. In this process they
        took a fifth of its one event loop: apart, on two cores, the p50 at 200 changes/s halved
        and at 1,000/s offered the intake answered 360 a second instead of 260 (bench/README.md,
        stop 26)."""
        if not ports:
            return
        sims = SimulatorProcess(list(ports), store=self.settings.bus.state_dir / "simulators", ports=ports,
                                own_session=True)
        try:
            await sims.start()
        except ConfigError as exc:
            raise _Failed(f"--with-simulators: {exc}", CONFIG_ERROR) from exc
        started.append(sims)
        for name in ports:
            _say(f"simulator {name} ({SYSTEMS[name].kind}) on {sims.messages_url(name)}")


async def _stop_all(simulators: list[SimulatorProcess]) -> None:
    await asyncio.gather(*(sims.stop() for sims in simulators))


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _say(text: str) -> None:
    click.echo(f"renkei run: {text}")
