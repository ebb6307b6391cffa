"""Prometheus `/metrics` (prometheus-client's exposition, not hand-written).

Labels are the names of destinations and sources, a municipality code where one applies,
an error code, an alert key — never a pseudonym, a message id or anything of a person.

Counters and gauges come from the monitor's latest status report (bus.status: the state
store's counters, the broker's queues, the delivery store); the latency histogram from the
audit trail the monitor tails (accepted → delivered, per destination).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bus.console.data import DestinationStatus, StatusReport

__all__ = ["CONTENT_TYPE", "ConsoleMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

_DESTINATION_COUNTERS = (
    ("routed", "routed", "Changes routed to the destination."),
    ("delivered", "delivered", "Receipts from the destination (applied or duplicate)."),
    ("duplicate", "duplicate", "Receipts where the destination had the change already."),
    ("attempts", "attempts", "Every try of the destination's sink."),
    ("retried", "retried", "Deliveries sent to a broker delay tier."),
    ("dead_lettered", "dead_lettered", "Every dead-lettering, resolved ones too."),
)


class _StatusCollector(Collector):
    def __init__(self, metrics: ConsoleMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        report = m.report
        up = GaugeMetricFamily("renkei_console_up", "1 when the console's last look at the bus succeeded.")
        up.add_metric([], 1.0 if report is not None and report.broker_reachable else 0.0)
        yield up
        if report is None:
            return
        for attr, name, doc in _DESTINATION_COUNTERS:
            family = CounterMetricFamily(f"renkei_destination_{name}", doc, labels=["destination"])
            for d in report.destinations:
                family.add_metric([d.name], float(getattr(d, attr)))
            yield family
        gauges: dict[str, tuple[str, Callable[[DestinationStatus], float | None]]] = {
            "ready": ("Changes waiting in the destination's queue.", lambda d: d.queue.ready),
            "in_flight": ("Changes being delivered now.", lambda d: d.queue.in_flight),
            "consumers": ("Consumers of the destination's queue.", lambda d: d.queue.consumers),
            "retrying": ("Residents waiting on a retry.", lambda d: d.delivery.retrying),
            "held_messages": ("Changes held behind a resident's unresolved one.", lambda d: d.delivery.held_messages),
            "dead_letters": ("Dead letters not yet replayed or discarded.", lambda d: d.delivery.dead),
            "oldest_parked_age_seconds": ("How long the longest-waiting resident has waited.",
                                          lambda d: d.delivery.oldest_parked_age),
        }
        for name, (doc, get) in gauges.items():
            gauge = GaugeMetricFamily(f"renkei_destination_{name}", doc, labels=["destination"])
            for d in report.destinations:
                value = get(d)
                if value is not None:
                    gauge.add_metric([d.name], float(value))
            yield gauge
        health = GaugeMetricFamily("renkei_destination_health", "0 green, 1 amber, 2 red.", labels=["destination"])
        for name, colour in sorted(m.colours.items()):
            health.add_metric([name], {"green": 0.0, "amber": 1.0, "red": 2.0}[colour])
        yield health
        for attr in ("accepted", "duplicate", "rejected", "forbidden"):
            family = CounterMetricFamily(f"renkei_source_{attr}", f"Changes the source sent, {attr}.",
                                         labels=["source"])
            for s in report.sources:
                family.add_metric([s.name], float(getattr(s, attr)))
            yield family
        if report.dead_letters.total is not None:
            by_code = GaugeMetricFamily("renkei_dead_letters_by_code", "Unresolved dead letters by error code.",
                                        labels=["code"])
            for code, n in sorted(report.dead_letters.by_code.items()):
                by_code.add_metric([code], float(n))
            yield by_code
        intake = GaugeMetricFamily("renkei_intake_ready", "Changes waiting for the router.")
        intake.add_metric([], float(report.intake.ready or 0))
        yield intake
        alerts = GaugeMetricFamily("renkei_alerts_open", "Open alerts (1 per key).", labels=["alert"])
        for key in m.open_alerts:
            alerts.add_metric([key], 1.0)
        yield alerts
        audit = GaugeMetricFamily("renkei_audit_chain_ok", "1 when the last verification found the chain whole.")
        if m.audit_ok is not None:
            audit.add_metric([], 1.0 if m.audit_ok else 0.0)
        yield audit


class ConsoleMetrics:
    """One registry (not the process-global one), filled by the monitor."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.report: StatusReport | None = None
        self.colours: dict[str, str] = {}
        self.open_alerts: list[str] = []
        self.audit_ok: bool | None = None
        self.latency = Histogram("renkei_delivery_latency_seconds",
                                 "From accepted to delivered, per destination (from the audit trail).",
                                 ["destination"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_StatusCollector(self))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
