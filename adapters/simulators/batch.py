"""A simulator's batch endpoint: ``POST /messages`` with ``Content-Type:
application/vnd.renkei.batch+json`` (docs/delivery-contract.md, Batches).

Each item is applied as a single message would be (adapters.simulators.items): its own
idempotency key, its own checks, its own receipt in the answer (200, ``{"items": [...]}``,
in the request's order). A whole-request behaviour (fail, slow, down) is decided for the
request; ``reject`` (and ``fail`` narrowed to one ``key``) is decided item by item, so a test
can have one item refused and the others applied::

    sim.control(mode="reject", key="<idempotency key>")      # that item alone is "rejected"
    sim.control(mode="fail", key="<idempotency key>")        # that item alone is "retry"
"""

from __future__ import annotations

import json
from typing import Any

from adapters.simulators.items import Checker, Item, Verdict, apply_item, rejected
from adapters.simulators.state import SimulatorState

__all__ = ["BATCH_MEDIA", "MAX_ITEMS", "answer_batch", "whole_request"]

BATCH_MEDIA = "application/vnd.renkei.batch+json"
MAX_ITEMS = 1000
_ITEM_FIELDS = ("idempotency_key", "content_type", "body")


def whole_request(sim: SimulatorState) -> bool:
    """Does the current behaviour decide a batch as a whole (fail, slow, down, not for one key)?"""
    b = sim.behaviour
    return b.mode in ("fail", "slow", "down") and b.key is None


def answer_batch(sim: SimulatorState, checker: Checker, raw: bytes) -> Verdict:
    """Apply every item of a batch request; a malformed batch is refused whole (400)."""
    sim.batches += 1
    try:
        data = json.loads(raw)
    except ValueError:
        return rejected(sim, None, "S410", "a batch must be a JSON object {\"items\": [...]}", 400)
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        return rejected(sim, None, "S410", "a batch must be a JSON object with a non-empty list \"items\"", 400)
    if len(items) > MAX_ITEMS:
        return rejected(sim, None, "S411", f"a batch takes at most {MAX_ITEMS} items, got {len(items)}", 413)
    for n, item in enumerate(items):
        missing = [f for f in _ITEM_FIELDS if not isinstance(item, dict) or f not in item]
        if missing:
            return rejected(sim, None, "S410", f"item {n} lacks {', '.join(missing)}", 400)
    return Verdict(200, {"items": [_one(sim, checker, item) for item in items]})


def _one(sim: SimulatorState, checker: Checker, data: dict[str, Any]) -> dict[str, Any]:
    key = str(data["idempotency_key"])
    subject = str(data.get("subject") or "")
    decision, _ = sim.decide(subject or None, key)
    if decision == "fail":
        sim.failed += 1
        return {"idempotency_key": key, "status": "retry", "retry_after": 1}
    if decision == "reject":
        verdict = rejected(sim, key, "S422", "rejected by the receiving system (simulated)")
        return {"idempotency_key": key, **verdict.body}
    body = data["body"]
    media = str(data["content_type"]).split(";", 1)[0].strip().lower()
    raw = body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()
    sequence = data.get("sequence")
    verdict = apply_item(sim, checker, Item(
        key=key, message_id=_text(data.get("message_id")), kind=_text(data.get("kind")),
        municipality=str(data.get("municipality") or ""), subject=subject,
        sequence=sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else None,
        media=media, raw=raw))
    answer = {k: v for k, v in verdict.body.items() if k != "key"}
    return {"idempotency_key": key, **answer}


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None
