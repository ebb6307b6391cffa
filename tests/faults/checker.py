"""The fault suite's checker: what the intake accepted against what every simulator applied.

    checker = Checker(catalog, systems=["zei", "kokuho"])
    report = checker.check("kill -9 of a bus worker", accepted_records, sims.states)
    assert report.ok, report.line()

- *accepted*: the records the intake answered 202 (or "duplicate" to a resubmission whose
  first answer was lost), in the order each resident's changes were sent;
- *expected*: destination → idempotency keys, from the shipped route table alone (as
  bus.demo's `_expected` does), for the destinations the scenario runs a simulator of;
- *applied*: each simulator's received messages, with the order it applied them
  (`number`) and their `subject`/`sequence` metadata.

Counts: accepted, expected deliveries, applied, missing, duplicated effects (one message
applied under two keys, or an effect counted twice for one key: a bug either way; the
simulators answer a repeated key "duplicate" without effect, counted as `absorbed`),
unexpected (applied, not expected), order violations (a resident's later change applied
before an earlier one at one destination). Every report is kept in `REPORTS` for the
terminal summary (tests/faults/conftest.py).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.simulators import SimulatorState
from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.paths import routes_dir
from bus.routing.router import RouteTable

__all__ = ["REPORTS", "Checker", "Report"]


@dataclass(slots=True)
class Report:
    scenario: str
    accepted: int = 0
    expected: int = 0
    applied: int = 0
    missing: int = 0
    duplicated: int = 0
    unexpected: int = 0
    order_violations: int = 0
    absorbed: int = 0  # repeated keys the simulators answered "duplicate" (redeliveries)
    #: scenario facts (kills, peak RSS, ...); `parked` (residents still parked at the end) and
    #: `refused` (valid changes the intake did not accept) must be 0 when present
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # the first few, for the failure message

    @property
    def ok(self) -> bool:
        return (self.accepted > 0 and self.expected > 0 and self.applied == self.expected
                and not (self.missing or self.duplicated or self.unexpected or self.order_violations)
                and not self.extra.get("parked") and not self.extra.get("refused"))

    def line(self) -> str:
        facts = "".join(f" {k}={v}" for k, v in self.extra.items())
        verdict = "ok" if self.ok else "FAILED"
        text = (f"[faults] {self.scenario}: {verdict} accepted={self.accepted} expected={self.expected} "
                f"applied={self.applied} missing={self.missing} duplicated={self.duplicated} "
                f"unexpected={self.unexpected} order_violations={self.order_violations} "
                f"absorbed={self.absorbed}{facts}")
        return text + ("" if self.ok else f" problems={self.problems[:5]}")


#: every report of this test session, in order (printed by the terminal summary hook)
REPORTS: list[Report] = []


class Checker:
    def __init__(self, catalog: Catalog, pseudonym_key: bytes, systems: Iterable[str]) -> None:
        self.routes = RouteTable.load(routes_dir(), catalog)
        self.ids = Pseudonymizer(pseudonym_key)
        # the systems the bus delivers to: a simulated system no route addresses (the 中間サーバー,
        # fed by the 統合宛名 function's simulator, not by the bus) is not the bus's to check
        routed = {route.destination for route in self.routes.routes}
        self.systems = tuple(name for name in systems if name in routed)

    def message_id(self, record: Mapping[str, Any]) -> str:
        return self.ids.message_id(record["municipality_code"], record["address_number"],
                                   int(record["history_number"]))

    def subject(self, record: Mapping[str, Any]) -> str:
        return self.ids.subject(record["municipality_code"], record["address_number"])

    def expected(self, accepted: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
        """destination → idempotency keys it must apply (only the systems simulated here)."""
        expected: dict[str, set[str]] = {name: set() for name in self.systems}
        for record in accepted:
            municipality = record["municipality_code"]
            message_id = self.message_id(record)
            for match in self.routes.route(dict(record), municipality, message_id=message_id):
                destination = match.route.destination
                if destination in expected:
                    expected[destination].add(f"{message_id}.{destination}")
        return expected

    def missing(self, expected: Mapping[str, set[str]], states: Mapping[str, SimulatorState]) -> int:
        """How many expected deliveries no simulator applied yet (cheap: for polling)."""
        return sum(len(keys - states[name].messages.keys()) for name, keys in expected.items())

    def check(self, scenario: str, accepted: list[Mapping[str, Any]], states: Mapping[str, SimulatorState],
              *, expected: Mapping[str, set[str]] | None = None, **extra: Any) -> Report:
        expected = expected if expected is not None else self.expected(accepted)
        report = Report(scenario, accepted=len(accepted), extra=dict(extra))
        for name in self.systems:
            state = states[name]
            want = expected.get(name, set())
            have = state.messages
            report.expected += len(want)
            report.applied += len(have.keys() & want)
            lost = want - have.keys()
            surplus = have.keys() - want
            report.missing += len(lost)
            report.unexpected += len(surplus)
            report.problems += [f"{name}: missing {k}" for k in sorted(lost)[:3]]
            report.problems += [f"{name}: unexpected {k}" for k in sorted(surplus)[:3]]
            # an effect twice: one message applied under two keys, or more effects than keys
            per_message = Counter(m.message_id for m in have.values())
            twice = sum(n - 1 for n in per_message.values() if n > 1) + max(0, state.effects - len(have))
            report.duplicated += twice
            if twice:
                report.problems.append(f"{name}: {twice} effects twice")
            report.absorbed += state.duplicates
            by_subject: dict[str, list[tuple[int, int]]] = {}
            for m in have.values():
                by_subject.setdefault(m.subject, []).append((m.number, m.sequence or 0))
            for subject, applied in by_subject.items():
                sequences = [sequence for _, sequence in sorted(applied)]
                inversions = sum(1 for a, b in itertools.pairwise(sequences) if b <= a)
                if inversions:
                    report.order_violations += inversions
                    report.problems.append(f"{name}: resident {subject[:12]}… applied in order {sequences}")
        REPORTS.append(report)
        print(report.line())
        return report
