"""The sample Prometheus alert rules and Grafana dashboard in docker/ are well formed and ask only
for metrics the console's /metrics exposes (promtool checks the rules too when it is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from bus.console.metrics import ConsoleMetrics
from bus.status import DeadLetterSummary, DeliveryFigures, DestinationStatus, QueueFigures, SourceStatus, StatusReport

DOCKER = Path(__file__).resolve().parents[2] / "docker"
RULES = DOCKER / "prometheus" / "renkei-alerts.yml"
DASHBOARD = DOCKER / "grafana" / "renkei-dashboard.json"


def _exposition() -> str:
    """The exposition of a console that saw a bus with a red destination and an open alert."""
    metrics = ConsoleMetrics()
    metrics.report = StatusReport(
        at=0.0, broker="embedded", where="-", intake=QueueFigures("renkei.intake", 0, 0, 1),
        dead_letters=DeadLetterSummary(2, {"zei": 2}, {"D200": 2}),
        destinations=[DestinationStatus("zei", "http", QueueFigures("renkei.zei", 3, 1, 1), routed=9, delivered=4,
                                        delivery=DeliveryFigures(retrying=1, held_residents=1, held_messages=2,
                                                                 dead=2, oldest_parked_age=12.0))],
        sources=[SourceStatus("jumin", accepted=9, rejected=1)])
    metrics.colours = {"zei": "red"}
    metrics.open_alerts = ["destination:zei"]
    metrics.audit_ok = True
    metrics.latency.labels("zei").observe(0.2)
    return metrics.exposition().decode()


def _exposed() -> set[str]:
    return {s.name for family in text_string_to_metric_families(_exposition()) for s in family.samples}


def _names(expr: str) -> set[str]:
    return set(re.findall(r"\brenkei_[a-z_]+\b", expr))


def test_every_alert_rule_is_complete_and_asks_for_exposed_metrics() -> None:
    exposed = _exposed()
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 5
    for rule in rules:
        assert re.fullmatch(r"Renkei[A-Za-z]+", rule["alert"]), rule
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert _names(rule["expr"]) and _names(rule["expr"]) <= exposed, (rule["alert"], _names(rule["expr"]) - exposed)
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_promtool_accepts_the_rules_when_it_is_installed() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:  # Debian's `prometheus` package brings it; the parser test above checks without it
        assert yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        return
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_grafana_dashboard_plots_only_exposed_metrics() -> None:
    exposed = _exposed()
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["panels"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = _names(target["expr"])
            assert names and names <= exposed, (panel["title"], names - exposed)


def test_the_metrics_are_labelled_by_destination_source_code_and_alert_only() -> None:
    text = _exposition()
    labels = {k for family in text_string_to_metric_families(text) for s in family.samples for k in s.labels}
    assert labels == {"destination", "source", "code", "alert", "le"}
    assert not re.search(r"[0-9a-f]{32}", text)
