"""Alerts that don't flood: one when a condition starts, one when it clears.

The monitor (bus.console.monitor) hands `Alerts.evaluate` the conditions it sees now, each
under a key that groups what belongs together — one key per destination (down, dead letters
appearing, backlog too old: one alert, its reasons listed), one for the audit chain's
verification, one for an overdue checkpoint. Then:

- **quiet period**: a condition must hold for `quiet_period` seconds before its alert opens,
  and be gone as long before it clears (a flapping system raises nothing new);
- **grouped**: what opens and clears in one evaluation goes out as one notification;
- **rate-limited**: at most `per_hour` notifications an hour; those held back are counted
  and the count travels with the next one that goes out;
- to the **log** always, and to a **webhook** (JSON POST, Alertmanager-like) when set.

The console lists the open alerts and the recent ones (`Alerts.open`, `Alerts.recent`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bus.logs import get_logger

__all__ = ["Alert", "Alerts", "Condition", "webhook_sender"]

log = get_logger("renkei.console.alerts")
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Condition:
    key: str  # destination:zei, audit:verify, audit:checkpoint
    summary: str  # short English words for the log and webhook ("destination zei: 3 dead letters")
    reasons: tuple[tuple[str, dict[str, object]], ...] = ()  # message keys for the pages
    municipalities: frozenset[str] | None = None  # whose it is (None: the whole bus)


@dataclass(slots=True)
class Alert:
    key: str
    summary: str
    reasons: tuple[tuple[str, dict[str, object]], ...]
    municipalities: frozenset[str] | None
    started: float
    cleared: float | None = None

    def to_dict(self, status: str) -> dict[str, Any]:
        return {"status": status, "key": self.key, "summary": self.summary, "started_at": _iso(self.started),
                "cleared_at": _iso(self.cleared) if self.cleared else None,
                "municipalities": sorted(self.municipalities) if self.municipalities else None}


@dataclass(slots=True)
class Alerts:
    send: Send | None = None
    quiet_period: float = 30.0
    per_hour: int = 30
    keep_recent: int = 200
    _pending: dict[str, float] = field(default_factory=dict)  # key → first seen (not yet open)
    _clearing: dict[str, float] = field(default_factory=dict)  # key → first seen gone (still open)
    _open: dict[str, Alert] = field(default_factory=dict)
    _recent: deque[Alert] = field(default_factory=deque)
    _sent: deque[float] = field(default_factory=deque)
    suppressed: int = 0
    notifications: int = 0

    @property
    def open(self) -> list[Alert]:
        return sorted(self._open.values(), key=lambda a: a.started)

    @property
    def recent(self) -> list[Alert]:
        """Cleared alerts, newest first."""
        return list(reversed(self._recent))

    async def evaluate(self, conditions: list[Condition], now: float | None = None) -> dict[str, Any] | None:
        """Open and clear alerts for what holds now; returns the notification sent (or held back)."""
        now = time.time() if now is None else now
        seen = {c.key: c for c in conditions}
        opened: list[Alert] = []
        cleared: list[Alert] = []
        for key in list(self._pending):
            if key not in seen:
                del self._pending[key]
        for key, c in seen.items():
            alert = self._open.get(key)
            if alert is not None:
                self._clearing.pop(key, None)
                merged = dict(alert.reasons) | dict(c.reasons)  # what it ever was while open, latest figures
                alert.summary, alert.reasons = c.summary, tuple(merged.items())
                continue
            first = self._pending.setdefault(key, now)
            if now - first >= self.quiet_period:
                del self._pending[key]
                alert = Alert(key, c.summary, c.reasons, c.municipalities, started=first)
                self._open[key] = alert
                opened.append(alert)
        for key in list(self._open):
            if key in seen:
                continue
            first_gone = self._clearing.setdefault(key, now)
            if now - first_gone >= self.quiet_period:
                del self._clearing[key]
                alert = self._open.pop(key)
                alert.cleared = first_gone
                cleared.append(alert)
                self._recent.append(alert)
                while len(self._recent) > self.keep_recent:
                    self._recent.popleft()
        if not opened and not cleared:
            return None
        return await self._notify(opened, cleared, now)

    async def _notify(self, opened: list[Alert], cleared: list[Alert], now: float) -> dict[str, Any]:
        for a in opened:
            log.warning("alert opened", alert=a.key, summary=a.summary)
        for a in cleared:
            log.info("alert cleared", alert=a.key, summary=a.summary)
        listed = [a.to_dict("firing") for a in opened] + [a.to_dict("resolved") for a in cleared]
        body: dict[str, Any] = {"source": "renkei", "at": _iso(now), "alerts": listed, "suppressed_before": 0}
        while self._sent and self._sent[0] < now - 3600:
            self._sent.popleft()
        if len(self._sent) >= self.per_hour:
            self.suppressed += len(listed)
            log.warning("alert notifications rate-limited", held_back=self.suppressed, per_hour=self.per_hour)
            return {**body, "held_back": True}
        body["suppressed_before"], self.suppressed = self.suppressed, 0
        self._sent.append(now)
        self.notifications += 1
        if self.send is not None:
            try:
                await self.send(body)
            except Exception as exc:  # a webhook down must not stop the monitor; the log has it
                log.warning("alert webhook failed", error=str(exc))
        return body


def webhook_sender(url: str, *, timeout: float = 5.0) -> Send:
    """POST each notification as JSON to `url`; a non-2xx answer is an error (logged)."""

    async def send(body: dict[str, Any]) -> None:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(url, json=body)
            response.raise_for_status()

    return send


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
