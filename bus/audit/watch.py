"""Strict verification kept cheap enough for a readiness probe: from the last verified checkpoint on.

    watch = ChainWatch(lambda: AuditLog.open(settings))
    verdict = watch.check(max_age=10)     # at most one verification every 10 s; else the last one
    verdict.ok, verdict.reason            # reason: no personal data, no pseudonym, no message id

The first check walks the whole trail (bus.audit.verify); each later one only what follows the
last checkpoint the previous one found good (`Report.anchor`: its signature verified, its hash
the chain's), so a check costs the records written since, not the trail's length. A trail
without checkpoints goes on from the head the last check verified (an unsigned anchor). A verdict is
**strict**: the chain broken, or something not proven (no signing key to check with, no witness,
no checkpoints), is not ok — as `renkei audit verify --strict` exits 1 or 3.

What an incremental check cannot see: a record altered *before* the anchor after it was verified
(the periodic full verification of the console's monitor, `verify_every`, and `renkei audit
verify` do).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bus.audit.log import AuditLog
from bus.audit.signing import Checkpoint
from bus.audit.verify import Report, verify

__all__ = ["ChainWatch", "Verdict"]

_HEX_ID = re.compile(r"\b[0-9a-f]{32,}\b")  # a pseudonym, a message id, a hash: never in a probe's answer


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool  # strict: whole and everything proven
    broken: bool  # a problem found in the chain (not only something unproven)
    reason: str  # "ok", "broken at record S: …", "not proven: …"
    report: Report
    at: float  # time.monotonic() of the verification


class ChainWatch:
    """Strict, incremental, cached verification of one trail (`open_log` opens it for each check)."""

    def __init__(self, open_log: Callable[[], AuditLog], *, strict: bool = True) -> None:
        self._open = open_log
        self.strict = strict
        self._anchor: Checkpoint | None = None
        self._lock = threading.Lock()  # checks run in worker threads: one at a time
        self.last: Verdict | None = None

    def check(self, max_age: float = 0.0) -> Verdict:
        """The last verdict if younger than `max_age` seconds, else a new verification."""
        with self._lock:
            last = self.last
            if last is not None and time.monotonic() - last.at < max_age:
                return last
            with self._open() as log:
                report = verify(log.store, log.verifier(), witness=log.witness, interval=log.checkpoint_interval,
                                since=self._anchor)
            # a broken chain keeps the anchor: the next check finds the break again
            if report.ok and report.anchor is not None and report.anchor.signature:
                self._anchor = report.anchor
            elif report.ok and report.head_seq:  # no checkpoint yet: go on from the head verified, unsigned
                self._anchor = Checkpoint(report.head_seq, report.head_hash, "", "", "")
            self.last = _verdict(report, strict=self.strict)
            return self.last


def _verdict(report: Report, *, strict: bool) -> Verdict:
    first = report.first
    if first is not None:
        more = len(report.problems) - 1
        reason = f"broken at record {first.seq}: {_HEX_ID.sub('…', first.what)}" + (f" (+{more} more)" if more else "")
        return Verdict(False, True, reason, report, time.monotonic())
    if strict and report.unproven:
        return Verdict(False, False, "not proven: " + "; ".join(report.unproven), report, time.monotonic())
    return Verdict(True, False, "ok", report, time.monotonic())
