"""The life events of a message (DESIGN §6) and the one object the pipeline hands the trail.

    received → rejected (codes) | duplicate | accepted
    accepted → routed (destination, route, projection, legal basis) per destination
    routed   → delivered (receipt) | retried (attempt, reason) … | dead_lettered (reason)
    dead     → replayed | discarded (actor, reason)
    any      → held | released (ordering: the resident's earlier change is not yet resolved)
    dead     → viewed_unmasked (actor: an operator looked at the personal data)

and, before or instead of a message's life (tenants, bus.tenancy):

    auth_failed  a source without valid credentials (actor: channel and peer; nothing of the body)
    forbidden    a known source submitting for a municipality it may not (source, municipality)
    refused      a projection for a destination of another municipality, not delivered

and of the trail itself: `migrated` (bus.audit.migrate: the records before it were re-chained
from a trail of an older format, whose head it names).

An `AuditEvent` holds no personal data: the resident is only its `subject` pseudonym
(bus.masking.Pseudonymizer.subject). bus.audit.guard checks this at append time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bus.envelope import Envelope

__all__ = ["AuditEvent", "EventType", "utc_now"]


class EventType(StrEnum):
    """What happened to a message; the value is what the trail stores."""

    RECEIVED = "received"
    REJECTED = "rejected"
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    ROUTED = "routed"
    DELIVERED = "delivered"
    RETRIED = "retried"
    DEAD_LETTERED = "dead_lettered"
    REPLAYED = "replayed"
    DISCARDED = "discarded"
    HELD = "held"
    RELEASED = "released"
    VIEWED_UNMASKED = "viewed_unmasked"  # an operator asked to see a message's personal data
    AUTH_FAILED = "auth_failed"  # a source's credentials were missing or unknown (HTTP 401)
    FORBIDDEN = "forbidden"  # a source submitted for a municipality it may not (HTTP 403)
    REFUSED = "refused"  # the router refused a destination of another municipality (tenancy guard)
    MIGRATED = "migrated"  # `renkei audit migrate`: the records before it re-chained from an older format


#: (second since the epoch, its "YYYY-MM-DDTHH:MM:SS" in UTC): one tuple, read and replaced whole,
#: so that a thread never pairs one second's text with another's microseconds
_SECOND: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """The trail's timestamp: ISO 8601, UTC, microseconds (sorts as text), as
    `datetime.now(UTC).isoformat(timespec="microseconds")` writes it. Every event takes one
    (~12 per change): the date and time of day are formatted once per second, not each time."""
    global _SECOND
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _SECOND
    if cached[0] != second:
        cached = _SECOND = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{micro:06d}+00:00"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One life event, as the pipeline reports it.

    `kind` is the message's kind at that stage; `projection` the target kind a route made of
    it (routed, delivered); `codes` the validation error codes (rejected); `receipt` the
    sink's receipt reference (delivered) or the rejected-store id (rejected); `actor` and
    `reason` who did it and why (discarded, replayed, dead_lettered, retried); `attempt`
    the delivery attempt (retried). `at` is when it happened (set when made).
    """

    event: EventType
    message_id: str | None = None
    municipality: str | None = None
    subject: str | None = None
    sequence: int | None = None
    kind: str | None = None
    source: str | None = None
    destination: str | None = None
    route: str | None = None
    projection: str | None = None
    legal_basis: str | None = None
    codes: tuple[str, ...] = ()
    receipt: str | None = None
    actor: str | None = None
    reason: str | None = None
    attempt: int | None = None
    at: str = field(default_factory=utc_now)

    @classmethod
    def of(cls, event: EventType | str, envelope: Envelope, **fields: Any) -> AuditEvent:
        """The event of `envelope` at this stage; `fields` add or override (receipt=…, reason=…).

        An envelope addressed to a destination (Envelope.for_destination) brings its
        destination, route, legal basis and, as `projection`, its kind.
        """
        if not fields:  # the hot path (routed, delivered … of the router and deliverer): no dict
            if envelope.destination:
                return cls(EventType(event), envelope.message_id, envelope.municipality, envelope.subject,
                           envelope.sequence, envelope.kind, envelope.source, envelope.destination,
                           envelope.route, envelope.kind, envelope.legal_basis)
            return cls(EventType(event), envelope.message_id, envelope.municipality, envelope.subject,
                       envelope.sequence, envelope.kind, envelope.source)
        values: dict[str, Any] = {
            "message_id": envelope.message_id,
            "municipality": envelope.municipality,
            "subject": envelope.subject,
            "sequence": envelope.sequence,
            "kind": envelope.kind,
            "source": envelope.source,
        }
        if envelope.destination:
            values.update(destination=envelope.destination, route=envelope.route,
                          legal_basis=envelope.legal_basis, projection=envelope.kind)
        values.update(fields)
        if "codes" in values:
            values["codes"] = tuple(values["codes"])
        return cls(EventType(event), **values)
