"""The stages' hooks: what happens to a message, reported once, heard by the middleware.

A stage never takes a recorder or a counter store and never checks `is not None`: it calls
its `StageHooks`, whose methods do nothing unless overridden (dramatiq's middleware is the
model). Where the bus is assembled (bus.app.Bus) one `Hooks` is built from the middleware
that listens, in order: the audit trail (bus.audit.hooks.AuditHooks), the counters
(`CountingHooks`, read by `renkei status`) and the log (`LoggingHooks`).

The reports must not raise, except `written`: it returns when every event reported so far
is kept (the audit trail's flush), and raises when the trail cannot keep them; the stages
await it before a message is acked or a source is answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bus.envelope import Envelope
from bus.groupcommit import GroupCommit
from bus.logs import debug_enabled, get_logger
from bus.ports import Receipt

if TYPE_CHECKING:
    from bus.errors import SourceForbidden
    from bus.store_protocols import StateStoreProtocol
    from bus.validation.issues import Issue

__all__ = ["CountingHooks", "Hooks", "LoggingHooks", "StageHooks"]

log = get_logger("renkei.hooks")


class StageHooks:
    """Every event of every stage; each does nothing unless overridden."""

    # -- the gate, in front of the intake --------------------------------------------------
    def authenticated(self, source: str, token: str) -> None:
        """A source proved who it is with token `token` (its id, never the token)."""

    def auth_failed(self, channel: str, reason: str, peer: str | None) -> None:
        """No, malformed or unknown credentials: refused before anything was read."""

    def forbidden(self, refusal: SourceForbidden, kind: str | None) -> None:
        """A known source submitted another municipality's change: refused, not kept."""

    # -- intake ----------------------------------------------------------------------------
    def received(self, envelope: Envelope) -> None: ...
    def accepted(self, envelope: Envelope) -> None: ...

    def duplicate(self, envelope: Envelope, accepted_as: str) -> None:
        """The change was accepted before (as `accepted_as`, its id then): not published again."""

    def rejected(self, source: str, kind: str | None, issues: Sequence[Issue], rejected_id: int) -> None:
        """Invalid: kept in the rejected store as `rejected_id`, the source told why."""

    # -- route -----------------------------------------------------------------------------
    def routed(self, envelopes: Sequence[Envelope]) -> None:
        """A change's projections were published, one envelope per destination (its
        `destination`): one call per change, with every destination it went to."""

    def already_routed(self, envelope: Envelope) -> None:
        """A redelivered change the route stage had routed before: dropped."""

    def refused(self, envelope: Envelope, reason: str) -> None:
        """A route addressed a destination of another municipality: not sent."""

    # -- deliver ---------------------------------------------------------------------------
    def attempted(self, destination: str) -> None:
        """One try of a sink (the in-process retries count one each)."""

    def delivered(self, envelope: Envelope, receipt: Receipt) -> None: ...
    def retried(self, envelope: Envelope, attempt: int, reason: str, delay: float) -> None: ...

    def dead_lettered(self, envelope: Envelope, code: str, reason: str) -> None:
        """Put in the dead letters (`envelope.destination`, or the route stage's own)."""

    def held(self, envelope: Envelope) -> None: ...
    def released(self, envelope: Envelope) -> None: ...

    async def written(self) -> None:
        """Return when every event reported so far is kept."""


class Hooks(StageHooks):
    """Several hooks as one, called in the order given."""

    def __init__(self, *hooks: StageHooks) -> None:
        self.hooks = hooks

    def authenticated(self, source: str, token: str) -> None:
        for h in self.hooks:
            h.authenticated(source, token)

    def auth_failed(self, channel: str, reason: str, peer: str | None) -> None:
        for h in self.hooks:
            h.auth_failed(channel, reason, peer)

    def forbidden(self, refusal: SourceForbidden, kind: str | None) -> None:
        for h in self.hooks:
            h.forbidden(refusal, kind)

    def received(self, envelope: Envelope) -> None:
        for h in self.hooks:
            h.received(envelope)

    def accepted(self, envelope: Envelope) -> None:
        for h in self.hooks:
            h.accepted(envelope)

    def duplicate(self, envelope: Envelope, accepted_as: str) -> None:
        for h in self.hooks:
            h.duplicate(envelope, accepted_as)

    def rejected(self, source: str, kind: str | None, issues: Sequence[Issue], rejected_id: int) -> None:
        for h in self.hooks:
            h.rejected(source, kind, issues, rejected_id)

    def routed(self, envelopes: Sequence[Envelope]) -> None:
        for h in self.hooks:
            h.routed(envelopes)

    def already_routed(self, envelope: Envelope) -> None:
        for h in self.hooks:
            h.already_routed(envelope)

    def refused(self, envelope: Envelope, reason: str) -> None:
        for h in self.hooks:
            h.refused(envelope, reason)

    def attempted(self, destination: str) -> None:
        for h in self.hooks:
            h.attempted(destination)

    def delivered(self, envelope: Envelope, receipt: Receipt) -> None:
        for h in self.hooks:
            h.delivered(envelope, receipt)

    def retried(self, envelope: Envelope, attempt: int, reason: str, delay: float) -> None:
        for h in self.hooks:
            h.retried(envelope, attempt, reason, delay)

    def dead_lettered(self, envelope: Envelope, code: str, reason: str) -> None:
        for h in self.hooks:
            h.dead_lettered(envelope, code, reason)

    def held(self, envelope: Envelope) -> None:
        for h in self.hooks:
            h.held(envelope)

    def released(self, envelope: Envelope) -> None:
        for h in self.hooks:
            h.released(envelope)

    async def written(self) -> None:
        for h in self.hooks:
            await h.written()


class CountingHooks(StageHooks):
    """The counters `renkei status` shows, kept in the state store: per source (accepted,
    duplicate, rejected, forbidden), per token, per failed authentication channel, and per
    destination (attempts, applied/duplicate, retried, dead, held, refused)."""

    def __init__(self, state: StateStoreProtocol) -> None:
        self._state = state
        self._counts: GroupCommit[tuple[str, str, str]] | None = None

    def _count(self, scope: str, name: str, counter: str) -> None:
        """Queued for the next group commit (bus.groupcommit): the bumps of concurrent messages
        share one transaction instead of one each (~9 per change: accepted, then attempts and
        applied per delivery); `written` returns once they are in. Outside an event loop
        (nothing to run a commit): written at once."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._state.count(scope, name, counter)
            return
        if self._counts is None:
            self._counts = GroupCommit(self._write)
        self._counts.add((scope, name, counter))

    async def _write(self, counts: list[tuple[str, str, str]]) -> list[None]:
        try:
            self._state.count_many(counts)
        except Exception as exc:  # statistics: a report never raises into a stage
            log.warning("counters not written", error=type(exc).__name__, counts=len(counts))
        return [None] * len(counts)

    async def written(self) -> None:
        if self._counts is not None:
            await self._counts.drain()

    async def aclose(self) -> None:
        """Write what is queued and stop the writer (`Bus.stop`, before the state store closes)."""
        counts, self._counts = self._counts, None
        if counts is not None:
            await counts.drain()
            await counts.aclose()

    def authenticated(self, source: str, token: str) -> None:
        self._count("token", source, token)

    def auth_failed(self, channel: str, reason: str, peer: str | None) -> None:
        self._count("auth", channel, "failed")

    def forbidden(self, refusal: SourceForbidden, kind: str | None) -> None:
        self._count("source", refusal.source, "forbidden")

    def accepted(self, envelope: Envelope) -> None:
        self._count("source", envelope.source, "accepted")

    def duplicate(self, envelope: Envelope, accepted_as: str) -> None:
        self._count("source", envelope.source, "duplicate")

    def rejected(self, source: str, kind: str | None, issues: Sequence[Issue], rejected_id: int) -> None:
        self._count("source", source, "rejected")

    def refused(self, envelope: Envelope, reason: str) -> None:
        self._count("destination", envelope.destination or "", "refused")

    def attempted(self, destination: str) -> None:
        self._count("destination", destination, "attempts")

    def delivered(self, envelope: Envelope, receipt: Receipt) -> None:
        self._count("destination", envelope.destination or "", receipt.status)

    def retried(self, envelope: Envelope, attempt: int, reason: str, delay: float) -> None:
        self._count("destination", envelope.destination or "", "retried")

    def dead_lettered(self, envelope: Envelope, code: str, reason: str) -> None:
        self._count("destination", envelope.destination or "", "dead")

    def held(self, envelope: Envelope) -> None:
        self._count("destination", envelope.destination or "", "held")


class LoggingHooks(StageHooks):
    """The log lines of the stages: ids, codes and pseudonyms only (a reason's text names no
    person: the sinks and the guards write it from codes and field paths)."""

    def __init__(self) -> None:
        self._log = get_logger("renkei.bus")

    def auth_failed(self, channel: str, reason: str, peer: str | None) -> None:
        self._log.warning("source authentication failed", channel=channel, peer=peer, reason=reason)

    def forbidden(self, refusal: SourceForbidden, kind: str | None) -> None:
        self._log.warning("source forbidden", source=refusal.source, municipality=refusal.municipality)

    def accepted(self, envelope: Envelope) -> None:
        if debug_enabled():
            self._log.debug("accepted", source=envelope.source, message_id=envelope.message_id, kind=envelope.kind)

    def duplicate(self, envelope: Envelope, accepted_as: str) -> None:
        self._log.info("duplicate", source=envelope.source, message_id=envelope.message_id,
                       subject=envelope.subject,
                       **({"accepted_as": accepted_as} if accepted_as != envelope.message_id else {}))

    def rejected(self, source: str, kind: str | None, issues: Sequence[Issue], rejected_id: int) -> None:
        self._log.info("rejected", source=source, codes=sorted({i.code for i in issues}))

    def already_routed(self, envelope: Envelope) -> None:
        self._log.info("duplicate dropped", message_id=envelope.message_id, stage="route")

    def refused(self, envelope: Envelope, reason: str) -> None:
        self._log.warning("cross-tenant route refused", route=envelope.route, destination=envelope.destination,
                          municipality=envelope.municipality, message_id=envelope.message_id)

    def delivered(self, envelope: Envelope, receipt: Receipt) -> None:
        if not debug_enabled():
            return
        self._log.debug("delivered", destination=envelope.destination, message_id=envelope.message_id,
                        status=receipt.status)

    def retried(self, envelope: Envelope, attempt: int, reason: str, delay: float) -> None:
        self._log.warning("delivery failed; retrying later", destination=envelope.destination,
                          message_id=envelope.message_id, tier=attempt, delay=delay, reason=reason)

    def dead_lettered(self, envelope: Envelope, code: str, reason: str) -> None:
        self._log.warning("dead-lettered", destination=envelope.destination, message_id=envelope.message_id,
                          code=code, reason=reason)

    def held(self, envelope: Envelope) -> None:
        self._log.info("held behind an earlier change", destination=envelope.destination,
                       message_id=envelope.message_id, subject=envelope.subject)
