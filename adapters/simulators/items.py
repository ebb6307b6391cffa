"""What a simulator does with one message, whether it came alone (``POST /messages`` with the
headers) or as an item of a batch (adapters.simulators.batch): the same checks, the same
effect once per Idempotency-Key, the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from adapters.simulators.state import ReceivedMessage, SimulatorState
from bus.catalog.upgrade import is_v2
from bus.errors import ValidationFailed

__all__ = ["Checker", "Item", "Verdict", "apply_item", "rejected"]

MEDIA = ("application/xml", "text/xml", "application/json")


class Checker(Protocol):
    @property
    def catalog(self) -> Any: ...

    def check(self, raw: bytes, media: str, kind: str | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class Item:
    """One message as the simulator sees it: the single delivery's headers, and its body."""

    key: str | None
    message_id: str | None
    kind: str | None
    municipality: str
    subject: str
    sequence: int | None
    media: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to one message: an HTTP status (alone) and a JSON body (alone or as an item)."""

    status: int
    body: dict[str, Any]


def rejected(sim: SimulatorState, key: str | None, code: str, msg: str, status: int = 422) -> Verdict:
    issues = [{"code": code, "message": msg}]
    sim.reject(key, issues)
    return Verdict(status, {"status": "rejected", "issues": issues})


def apply_item(sim: SimulatorState, checker: Checker, item: Item) -> Verdict:
    """Check `item` and apply it once per key: applied, duplicate, or rejected (with issues)."""
    key = item.key
    if not key:
        return rejected(sim, None, "S400", "Idempotency-Key header is required", 400)
    held = sim.messages.get(key)
    if held is not None:
        sim.duplicates += 1
        return Verdict(200, {"status": "duplicate", "key": key, "reference": held.reference})
    if item.kind and item.kind not in sim.kinds:
        return rejected(sim, key, "R220", f"this system takes {', '.join(sim.kinds)}, not {item.kind}")
    if item.media not in MEDIA:
        return rejected(sim, key, "R220", "content type must be application/xml or application/json", 415)
    try:
        record = checker.check(item.raw, item.media, item.kind)
    except ValidationFailed as exc:
        issues = [i.to_dict() for i in exc.issues]
        sim.reject(key, issues)
        return Verdict(422, {"status": "rejected", "issues": issues})
    if key in sim.messages:  # a twin request finished while this one was validated
        sim.duplicates += 1
        return Verdict(200, {"status": "duplicate", "key": key, "reference": sim.messages[key].reference})
    reference = f"{sim.system}-{sim.effects + 1:08d}"
    sim.accept(ReceivedMessage(
        key=key, message_id=item.message_id or key, kind=item.kind or sim.kind, municipality=item.municipality,
        subject=item.subject, sequence=item.sequence, content_type=item.media, body=item.raw, reference=reference))
    if sim.togo is not None and isinstance(record, dict) and (item.kind or sim.kind) == sim.kind:
        _togo(sim, checker, record, key, item.subject)
    return Verdict(200, {"status": "applied", "key": key, "reference": reference})


def _togo(sim: SimulatorState, checker: Checker, record: dict[str, Any], key: str, subject: str) -> None:
    """The 団体内統合宛名 function (adapters.simulators.togo): number and 副本 — a 副本 update
    applied at the 中間サーバー simulator — or a notice addressed and applied at the portal
    simulator (`sim.downstream`, when it runs in the same cluster)."""
    assert sim.togo is not None
    downstream, catalog = sim.downstream, checker.catalog
    if downstream is None or catalog is None:
        sim.togo.forward(sim.kind, record, ())  # numbers and 副本 kept; nothing to send it to
        return
    ks = catalog.get(downstream.kind, 2 if is_v2(record) else None)  # a v2 change: the v2 副本 (household)
    made = sim.togo.forward(sim.kind, record, ks.fields)
    if made is None:
        return
    body: bytes = ks.to_xml(made[0])
    forward = f"{key.rsplit('.', 1)[0]}.{downstream.system}"
    if forward not in downstream.messages:
        downstream.accept(ReceivedMessage(
            key=forward, message_id=forward.rsplit(".", 1)[0], kind=downstream.kind,
            municipality=str(record.get("municipality_code", "")), subject=subject, sequence=made[1],
            content_type="application/xml", body=body, reference=f"{downstream.system}-{downstream.effects + 1:08d}"))
