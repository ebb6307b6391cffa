"""A conformance report: checks with their evidence, as terminal text, JUnit XML and HTML.

The report is what a vendor hands to the municipality, so it holds identifiers, statuses,
timings and issue codes only: never a message body, which carries personal data.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

__all__ = ["Check", "Outcome", "Report"]

Outcome = Literal["passed", "failed", "not applicable"]


@dataclass(slots=True)
class Check:
    """One rule of the contract, checked: `name` is stable (a test and a JUnit case use it)."""

    name: str
    title: str
    outcome: Outcome = "passed"
    evidence: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def note(self, line: str) -> None:
        self.evidence.append(line)

    def fail(self, line: str) -> None:
        self.outcome = "failed"
        self.evidence.append("FAIL: " + line)

    def not_applicable(self, why: str) -> None:
        self.outcome = "not applicable"
        self.evidence.append(why)

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"


@dataclass(slots=True)
class Report:
    """The checks of one run against one system (`subject`: what was checked, e.g. a URL)."""

    kit: str
    system: str
    subject: str
    checks: list[Check] = field(default_factory=list)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.checks)

    def check(self, name: str) -> Check:
        """The check called `name` (KeyError when the run has none)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def failed_names(self) -> list[str]:
        return [c.name for c in self.checks if c.failed]

    def summary(self) -> str:
        counts = {o: sum(c.outcome == o for c in self.checks) for o in ("passed", "failed", "not applicable")}
        verdict = "PASSED" if self.passed else "FAILED"
        return (f"{verdict}: {counts['passed']} passed, {counts['failed']} failed, "
                f"{counts['not applicable']} not applicable")

    def to_text(self) -> str:
        lines = [f"renkei conformance {self.kit}: {self.system} at {self.subject} ({self.started})", ""]
        marks = {"passed": "PASS", "failed": "FAIL", "not applicable": "N/A "}
        for c in self.checks:
            lines.append(f"[{marks[c.outcome]}] {c.name}: {c.title} ({c.seconds:.2f} s)")
            lines.extend(f"         {e}" for e in c.evidence)
        lines += ["", self.summary()]
        return "\n".join(lines) + "\n"

    def to_junit(self) -> bytes:
        """JUnit XML (the schema CI servers read): a testsuite, a testcase per check."""
        suite = ET.Element(
            "testsuite",
            name=f"renkei.conformance.{self.kit}.{self.system}",
            tests=str(len(self.checks)),
            failures=str(sum(c.failed for c in self.checks)),
            skipped=str(sum(c.outcome == "not applicable" for c in self.checks)),
            errors="0",
            timestamp=self.started,
            time=f"{sum(c.seconds for c in self.checks):.3f}",
        )
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="subject", value=self.subject)
        for c in self.checks:
            case = ET.SubElement(suite, "testcase", classname=f"{self.kit}.{self.system}", name=c.name,
                                 time=f"{c.seconds:.3f}")
            text = "\n".join(c.evidence)
            if c.failed:
                failure = ET.SubElement(case, "failure", message=c.title, type="ContractViolation")
                failure.text = text
            elif c.outcome == "not applicable":
                ET.SubElement(case, "skipped", message=text[:500])
            out = ET.SubElement(case, "system-out")
            out.text = f"{c.title}\n{text}"
        xml: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
        return xml

    def to_html(self) -> str:
        """One self-contained page (no script, no external resource)."""
        rows = []
        for c in self.checks:
            css = {"passed": "pass", "failed": "fail", "not applicable": "na"}[c.outcome]
            evidence = "".join(f"<li>{html.escape(e)}</li>" for e in c.evidence)
            rows.append(
                f'<tr class="{css}"><td><code>{html.escape(c.name)}</code></td><td>{html.escape(c.title)}</td>'
                f"<td>{html.escape(c.outcome)}</td><td><ul>{evidence}</ul></td><td>{c.seconds:.2f} s</td></tr>"
            )
        title = f"renkei conformance {self.kit}: {self.system}"
        return f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:.3em .6em;vertical-align:top}}
tr.pass td:nth-child(3){{background:#cfc}}tr.fail td:nth-child(3){{background:#fcc}}
tr.na td:nth-child(3){{background:#eee}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Checked: <code>{html.escape(self.subject)}</code> at {html.escape(self.started)}.
The contract: docs/delivery-contract.md.</p>
<p class="verdict"><strong>{html.escape(self.summary())}</strong></p>
<table><tr><th>check</th><th>rule</th><th>outcome</th><th>evidence</th><th>time</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
