"""What each simulated system of `renkei demo` must apply, worked out from the route table alone
(independently of the bus's queues): the demo compares it with what each simulator applied."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bus.masking import Pseudonymizer
from bus.routing.router import RouteTable
from bus.stages.intake import identity_of

__all__ = ["expected_keys"]

#: what the 団体内統合宛名 function sends on (the only path to these two): its destination → theirs
_RELAYED_TO = {"togo": "chukan", "togo_oshirase": "portal"}


def expected_keys(
    feed: Iterable[tuple[str, dict[str, Any] | None]], routes: RouteTable, pseudonyms: Pseudonymizer,
    applications: Sequence[dict[str, Any]] = (),
) -> dict[str, set[str]]:
    """destination → the idempotency keys it must apply, from the route table alone; `feed` is
    the (kind, record) of each message sent, record None for those that must be rejected."""
    expected: dict[str, set[str]] = {}
    for application in applications:  # ぴったりサービス: identity by 申請ID (bus.stages.intake)
        municipality = application["municipality_code"]
        message_id = pseudonyms.message_id(municipality, "pittari:" + application["application_id"], 1)
        for match in routes.route(application, municipality, kind="pittari.shinsei"):
            expected.setdefault(match.route.destination, set()).add(f"{message_id}.{match.route.destination}")
    for kind, record in feed:
        if record is None:
            continue
        identity = identity_of(kind, record)
        assert identity is not None
        municipality = identity[0]
        message_id = pseudonyms.message_id(*identity)
        for match in routes.route(record, municipality, kind=kind):
            destination = match.route.destination
            expected.setdefault(destination, set()).add(f"{message_id}.{destination}")
            relayed = _RELAYED_TO.get(destination)
            if relayed and (destination != "togo" or match.record.get("fukuhon_items")) and kind != "jumin.shien":
                # the 団体内統合宛名 function is the path to the 中間サーバー and the portal: it sends
                # the 副本 update (when the change alters a 副本 item) and every notice
                expected.setdefault(relayed, set()).add(f"{message_id}.{relayed}")
    return expected
