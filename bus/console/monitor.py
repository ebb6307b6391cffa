"""The console's eyes: every `sample_every` seconds a look at the bus — the status report, the
chart's sample, the metrics, the latency of what was delivered since the last look, and the
alerts' conditions; every `verify_every` seconds the audit chain is verified (in full), and
/readyz asks `audit_ready` (strict, from the last good checkpoint on, at most every
`ready_verify_every` seconds). A broken chain found either way raises the `audit:verify` alert.

The same monitor runs without the console in every `renkei run` process (bus.console.probes):
then with no chart history (`history=False`: one file, one writer — the console), verifying
from the last good checkpoint on, and with the latency histogram filled in the process itself
as it delivers (`tail_latency=False`: reading the whole trail as it grows costs a core's tenth).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime

from bus.audit.watch import ChainWatch, Verdict
from bus.console.alerts import Alerts, Condition
from bus.console.config import ConsoleOptions
from bus.console.data import AuditSummary, BusData, LifeRecord, RenkeiError, StatusReport
from bus.console.health import RED, History, Judgement, judge
from bus.console.metrics import ConsoleMetrics
from bus.logs import get_logger
from bus.tasks import stop_task

__all__ = ["Monitor"]

log = get_logger("renkei.console.monitor")
_REMEMBER = 100_000  # accepted times kept for the latency histogram


class Monitor:
    def __init__(self, data: BusData, options: ConsoleOptions, alerts: Alerts, *, history: bool = True,
                 full_verify: bool = True, tail_latency: bool = True) -> None:
        self.data = data
        self.options = options
        self.alerts = alerts
        self.metrics = ConsoleMetrics()
        self.history = History(data.state_dir / "console-history.json" if history else None,
                               keep_seconds=options.history_hours * 3600)
        self.chain = ChainWatch(data.open_audit, strict=options.ready_strict_audit)
        self._full_verify = full_verify  # False: every verify_every from the last good checkpoint on (cheap)
        self._tail_latency = tail_latency  # False: the latency histogram is filled by someone else
        self.report: StatusReport | None = None
        self.judgements: dict[str, Judgement] = {}
        self.audit: AuditSummary | None = None
        self.audit_error: str | None = None
        self._verified_at = 0.0
        self._seq: int | None = None
        self._accepted: OrderedDict[str, float] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False  # ends the loop even if a broker call swallows the cancellation (bus.tasks)
        self._changed = asyncio.Event()

    async def start(self, *, wait: bool = True) -> None:
        """Look at the bus now (`wait`), or at once in the background (a bus process must not wait
        for its first verification of a long trail before it is ready), then every `sample_every`."""
        if wait:
            await self.look()
        else:
            self._changed.set()
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="console monitor")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        await stop_task(task)

    def verify_soon(self) -> None:
        """Verify the audit chain at the next look."""
        self._verified_at = 0.0

    def poke(self) -> None:
        """Look again now (after an operator's action), not at the next tick."""
        self._changed.set()

    async def _loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=self.options.sample_every)
            self._changed.clear()
            if self._stopping:
                return
            try:
                await self.look()
            except Exception as exc:  # the console must outlive a bad look; the log says why
                log.warning("the console could not look at the bus", error=str(exc))

    async def look(self) -> None:
        report = await self.data.status()
        self.report = report
        self.history.add(report)
        self.judgements = {d.name: judge(d, down_after=self.options.down_after, backlog_age=self.options.backlog_age)
                           for d in report.destinations}
        self.metrics.report = report
        self.metrics.colours = {n: j.colour for n, j in self.judgements.items()}
        now = time.time()
        if now - self._verified_at >= self.options.verify_every:
            await self._verify()
            self._verified_at = now
        if self._tail_latency:
            await asyncio.to_thread(self._observe_latency)
        await self.alerts.evaluate(self._conditions(report, now), now)
        self.metrics.open_alerts = [a.key for a in self.alerts.open]

    async def _verify(self) -> None:
        try:
            self.audit = await asyncio.to_thread(self.data.verify if self._full_verify else self._verify_since)
            self.audit_error = None
            self.metrics.audit_ok = self.audit.ok
        except (RenkeiError, OSError) as exc:
            self.audit, self.audit_error = None, str(exc)
            self.metrics.audit_ok = None

    def _verify_since(self) -> AuditSummary:
        return self._summary(self.chain.check())

    def _summary(self, verdict: Verdict) -> AuditSummary:
        r = verdict.report
        return AuditSummary(not verdict.broken, r.head_seq, r.checkpoints, r.last_checkpoint,
                            r.anchor.signed_at if r.anchor else None,
                            verdict.reason.removeprefix("broken at ") if verdict.broken else None,
                            self.data.audit_location())

    async def audit_ready(self) -> Verdict:
        """The strict verdict on the audit chain for /readyz (cached `ready_verify_every` seconds);
        a break found here raises the audit alert at the next look, as the full verification does."""
        verdict = await asyncio.to_thread(self.chain.check, self.options.ready_verify_every)
        if verdict.broken and (self.audit is None or self.audit.ok):
            self.audit = self._summary(verdict)
            self.metrics.audit_ok = False
            self.poke()
        return verdict

    def _observe_latency(self) -> None:
        try:
            if self._seq is None:
                self._seq = self.data.head_seq()  # from now on: the past was observed by no one
                return
            for record in self._new_records():
                self._seq = record.seq
                if record.event == "accepted" and record.message_id:
                    self._accepted[record.message_id] = _epoch(record.at)
                    while len(self._accepted) > _REMEMBER:
                        self._accepted.popitem(last=False)
                elif record.event == "delivered" and record.message_id in self._accepted:
                    latency = _epoch(record.at) - self._accepted[record.message_id]
                    self.metrics.latency.labels(record.destination).observe(max(0.0, latency))
        except (RenkeiError, OSError) as exc:
            log.warning("the console could not read the audit trail", error=str(exc))

    def _new_records(self, pages: int = 20, size: int = 5000) -> Iterator[LifeRecord]:
        """What the trail got since the last look, a page at a time (at most `pages` a look)."""
        assert self._seq is not None
        for _ in range(pages):
            page = self.data.records_after(self._seq, size)
            yield from page
            if len(page) < size:
                return

    def _conditions(self, report: StatusReport, now: float) -> list[Condition]:
        found = []
        for d in report.destinations:
            j = self.judgements[d.name]
            keys = {k for k, _ in j.reasons}
            if j.colour == RED or "reason.backlog_age" in keys:
                words = ", ".join(_english(k, v) for k, v in j.reasons if k != "reason.ok")
                found.append(Condition(f"destination:{d.name}", f"destination {d.name}: {words}", j.reasons,
                                       self.data.destination_municipalities(d.name)))
        if self.audit is not None and not self.audit.ok:
            found.append(Condition("audit:verify", f"audit chain broken: {self.audit.first_problem}",
                                   (("reason.audit_broken", {"what": self.audit.first_problem or ""}),)))
        if self.audit is not None and self.data.signs_checkpoints() and self.audit.records:
            last = _epoch(self.audit.last_checkpoint_at) if self.audit.last_checkpoint_at else None
            unsigned = self.audit.records - self.audit.last_checkpoint_seq
            if unsigned > 0 and (last is None or now - last > self.options.checkpoint_overdue):
                found.append(Condition("audit:checkpoint", f"audit checkpoint overdue: {unsigned} records unsigned",
                                       (("reason.checkpoint_overdue", {"n": unsigned}),)))
        return found


_ENGLISH = {"reason.dead": "{n} dead letters", "reason.down": "failing for {seconds} s",
            "reason.retrying": "{n} residents retrying", "reason.held": "{n} changes held",
            "reason.backlog_age": "oldest waiting {seconds} s", "reason.unknown": "figures unknown"}


def _english(key: str, values: dict[str, object]) -> str:
    return _ENGLISH.get(key, key).format(**values)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
