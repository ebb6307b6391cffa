"""The receiver kit's batch check (docs/delivery-contract.md, Batches), for a receiver that
declares batches (``renkei conformance receiver --batch``):

``batch_answers_item_by_item``: one batch request (adapters.transports.httpbatch, the HTTP
sink's own encoding) carrying new valid changes, one change that can never be applied (a
body that is not well-formed) and one key already applied is answered 2xx with a receipt per
item: the valid ones ``applied``, the broken one ``rejected`` alone (the others still
applied), the resend ``duplicate``; each valid change has one effect, the broken one none;
the same batch sent again is answered ``duplicate`` item by item with no second effect.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal, Protocol

import httpx

from adapters.transports.httpbatch import BATCH_CONTENT_TYPE, BATCH_SIZE_HEADER, ITEM_STATUSES, batch_item
from bus.conformance.changes import ChangeMaker
from bus.conformance.report import Check
from bus.ports import Outbound

__all__ = ["batch_check"]

NAME = "batch_answers_item_by_item"
TITLE = "a batch is answered item by item: one refused item alone, the others applied, keys honoured"
VALID = 3


class _Options(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def batch(self) -> bool: ...
    @property
    def body(self) -> Literal["xml", "json"]: ...
    @property
    def headers(self) -> dict[str, str]: ...


class ReceiverKit(Protocol):
    """What the check uses of the running kit (bus.conformance.receiver.ReceiverKit)."""

    @property
    def options(self) -> _Options: ...
    @property
    def maker(self) -> ChangeMaker: ...
    @property
    def applied(self) -> list[Outbound]: ...
    @property
    def client(self) -> httpx.AsyncClient: ...

    async def expect_effects(self, check: Check, messages: list[Outbound], effects: int) -> None: ...


async def batch_check(kit: ReceiverKit) -> Check:
    check = Check(NAME, TITLE)
    if not kit.options.batch:
        check.not_applicable("the receiver was not declared to take batches (--batch): renkei sends it "
                             "one change per request")
        return check
    records = list(kit.maker.records(1))
    valid = [kit.maker.message(records[n % len(records)]) for n in range(VALID)]
    broken = kit.maker.message(records[0])
    resent = kit.applied[:1]
    order = [valid[0], broken, *resent, *valid[1:]]
    expected = {m.envelope.idempotency_key: "applied" for m in valid}
    expected[broken.envelope.idempotency_key] = "rejected"
    expected.update({m.envelope.idempotency_key: "duplicate" for m in resent})
    items = [_item(kit, m, broken=m is broken) for m in order]
    for round_ in ("first", "again"):
        answers = await _post(kit, check, items, round_)
        if answers is None:
            return check
        for message in order:
            key = message.envelope.idempotency_key
            wanted = expected[key] if round_ == "first" or key == broken.envelope.idempotency_key else "duplicate"
            _judge(check, round_, key, wanted, answers.get(key))
        await kit.expect_effects(check, [*valid, *resent], 1)
        await kit.expect_effects(check, [broken], 0)
    return check


def _item(kit: ReceiverKit, message: Outbound, *, broken: bool) -> dict[str, Any]:
    item = batch_item(message, kit.options.body)
    if broken:  # never applicable: not well-formed XML, or a JSON body with a field no kind has
        item["body"] = "<ResidentNotice><broken" if kit.options.body == "xml" else {"not_a_field": 1}
    return item


async def _post(kit: ReceiverKit, check: Check, items: list[dict[str, Any]], round_: str
                ) -> dict[str, dict[str, Any]] | None:
    client = kit.client
    headers = {**kit.options.headers, "Content-Type": BATCH_CONTENT_TYPE, BATCH_SIZE_HEADER: str(len(items))}
    content = json.dumps({"items": items}, ensure_ascii=False, default=str).encode()
    started = time.monotonic()
    try:
        response = await client.post(kit.options.url, content=content, headers=headers)
    except httpx.HTTPError as exc:
        check.fail(f"{round_}: a batch of {len(items)} items: no answer ({type(exc).__name__})")
        return None
    seconds = time.monotonic() - started
    if not 200 <= response.status_code < 300:
        check.fail(f"{round_}: a batch of {len(items)} items with one broken item: HTTP {response.status_code} "
                   f"in {seconds:.3f} s: a batch is answered 2xx with a receipt per item, one refused item alone")
        return None
    try:
        listed = json.loads(response.content).get("items")
    except (ValueError, AttributeError):
        listed = None
    if not isinstance(listed, list):
        check.fail(f"{round_}: HTTP {response.status_code}, but no JSON {{\"items\": [...]}} answer")
        return None
    check.note(f"{round_}: a batch of {len(items)} items: HTTP {response.status_code}, {len(listed)} receipts "
               f"in {seconds:.3f} s")
    return {str(i.get("idempotency_key")): i for i in listed if isinstance(i, dict)}


def _judge(check: Check, round_: str, key: str, wanted: str, answer: dict[str, Any] | None) -> None:
    short = key[:12] + "…"
    if answer is None:
        check.fail(f"{round_}: no receipt for key {short} (wanted {wanted})")
        return
    status = answer.get("status")
    codes = [i.get("code") for i in answer.get("issues") or [] if isinstance(i, dict)]
    line = f"{round_}: key {short}: {status}" + (f" [{', '.join(map(str, codes[:5]))}]" if codes else "")
    if status not in ITEM_STATUSES:
        check.fail(f"{line}: not one of {', '.join(ITEM_STATUSES)}")
    elif status == wanted or (wanted == "duplicate" and status == "applied"):
        check.note(line if status == wanted else line + " (a resend; answering \"duplicate\" is better)")
    else:
        check.fail(f"{line}: wanted {wanted}")
