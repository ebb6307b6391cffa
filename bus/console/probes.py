"""/metrics, /healthz and /readyz — one implementation wherever a bus process serves them.

    probes = Probes(monitor)
    routes = probes.routes()          # the console mounts them; so does the HTTP intake's app

- the console's port serves them (bus.console.web);
- a `renkei run` process without the console serves them on its HTTP intake's port (router,
  all), or on a small listener of its own, `[bus] health_host:health_port` (a deliverer):
  `BusProbes` — a `Monitor` without pages, accounts or chart history. Never a page, a dead
  letter or anything of a person: only the three probes.

`/metrics`: Prometheus exposition (bus.console.metrics). `/healthz`: 200 while the process lives.
`/readyz`: 200 when the broker, the state and delivery stores answer and the audit chain passes
strict verification (bus.audit.watch: incremental, cached `ready_verify_every` seconds); else 503
with the failing check and why (no personal data: record numbers, never ids or pseudonyms).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bus.console.alerts import Alerts, webhook_sender
from bus.console.config import console_options
from bus.console.data import BusData, RenkeiError
from bus.console.metrics import CONTENT_TYPE
from bus.console.monitor import Monitor
from bus.console.parts import ServerFactory
from bus.envelope import Envelope
from bus.errors import AuditStoreError
from bus.logs import get_logger
from bus.ports import Receipt
from bus.settings import Settings
from bus.stages import StageHooks

__all__ = ["BusProbes", "DeliveryLatency", "Probes"]

log = get_logger("renkei.health")


class Probes:
    """The three endpoints over one monitor."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def routes(self) -> list[Route]:
        return [Route("/metrics", self.metrics), Route("/healthz", self.healthz), Route("/readyz", self.readyz)]

    async def metrics(self, request: Request) -> Response:
        return Response(self.monitor.metrics.exposition(), media_type=CONTENT_TYPE)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(self, request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            report = await asyncio.wait_for(self.monitor.data.status(), timeout=10)
            checks["broker"] = "ok" if report.broker_reachable else "unreachable"
            checks["delivery_store"] = "ok" if report.dead_letters.total is not None else "unreadable"
            checks["state_store"] = ("unreadable" if any("cannot read the state file" in n for n in report.notes)
                                     else "ok")
        except (TimeoutError, RenkeiError, OSError) as exc:
            checks["broker"] = f"error: {type(exc).__name__}"
        try:
            verdict = await asyncio.wait_for(self.monitor.audit_ready(), timeout=10)
            checks["audit"] = verdict.reason
        except TimeoutError:  # the first walk of a long trail: it goes on, the next answer has it
            checks["audit"] = "verifying: the chain's verification has not finished yet"
        except (RenkeiError, AuditStoreError, OSError) as exc:
            checks["audit"] = f"error: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


class DeliveryLatency(StageHooks):
    """Middleware of the bus (`Bus(watchers=…)`): each delivery this process makes, observed in the
    latency histogram from its envelope's `occurred_at` (when the intake took it) to now."""

    def __init__(self, monitor: Monitor) -> None:
        self._histogram = monitor.metrics.latency

    def delivered(self, envelope: Envelope, receipt: Receipt) -> None:
        try:
            taken = datetime.fromisoformat(envelope.occurred_at).timestamp()
        except (TypeError, ValueError):
            return  # an envelope without a readable time: not observed (hooks never raise)
        self._histogram.labels(envelope.destination or "").observe(max(0.0, time.time() - taken))


class BusProbes:
    """The probes of a `renkei run` process without the console: `routes()` for the HTTP
    intake's app and `latency` for the bus's middleware (both before the bus starts),
    `start(listen=True)` for a listener of their own.

    The figures of /metrics are the bus's (every process tells the same: aggregate them with
    max, not sum), except the latency histogram: this process's own deliveries (sum them)."""

    def __init__(self, settings: Settings, *, serve: ServerFactory, broker: Any = None,
                 destinations: Callable[[], Iterable[str]] = tuple) -> None:
        options = console_options(settings)
        # the console, where one runs, sends the webhook; a bus process alone sends it itself
        send = webhook_sender(options.webhook_url) if options.webhook_url and not options.enabled else None
        alerts = Alerts(send, quiet_period=options.quiet_period, per_hour=options.alerts_per_hour)
        self.monitor = Monitor(BusData(settings, broker=broker, destinations=destinations), options, alerts,
                               history=False, full_verify=False, tail_latency=False)
        self.probes = Probes(self.monitor)
        self.latency = DeliveryLatency(self.monitor)
        self.settings = settings
        self._serve = serve
        self.server: Any = None
        self.url: str | None = None

    def routes(self) -> list[Route]:
        return self.probes.routes()

    async def start(self, *, listen: bool) -> str | None:
        """Start watching; with `listen`, serve the probes on [bus] health_host:health_port (0: not
        at all). A port in use is said (returned) and the process goes on without the listener."""
        await self.monitor.start(wait=False)
        bus = self.settings.bus
        if not listen or bus.health_port == 0:
            return None
        server = self._serve(Starlette(routes=self.routes()), host=bus.health_host, port=bus.health_port)
        try:
            await server.start()
        except OSError as exc:
            log.warning("health listener not started", host=bus.health_host, port=bus.health_port,
                        error=exc.strerror or type(exc).__name__)
            return (f"warning: cannot listen on {bus.health_host}:{bus.health_port} for /metrics, /healthz and "
                    f"/readyz ({exc.strerror or exc}): set [bus] health_port (0: none)")
        self.server = server
        self.url = server.url
        return f"metrics and health on {server.url}/metrics, /healthz, /readyz"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
        await self.monitor.stop()
