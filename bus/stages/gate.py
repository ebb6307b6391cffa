"""The tenant gate: who may put a change in, and the last line before a sink (DESIGN §8).

- `Gate` (bus.ports.Gatekeeper) authenticates a source's request against the configured
  sources (bus.tenancy.Sources) and reports every refusal to the stages' hooks (audited,
  counted, logged). The refused request's body is never read: an `auth_failed` event names
  the channel, the peer and the reason, nothing of the message.
- `TenantGuardSink` wraps a destination's sink: a message of another municipality is never
  delivered, whatever put it in that destination's queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from bus.errors import AuthenticationFailed, PermanentError, SourceForbidden
from bus.logs import get_logger
from bus.ports import BatchSink, ItemResult, Outbound, Receipt, Sink, batch_size_of
from bus.stages.hooks import StageHooks
from bus.tenancy import CROSS_TENANT, SourceBinding, Sources, Tenancy

__all__ = ["Gate", "TenantGuardSink"]

log = get_logger("renkei.tenants")


class Gate:
    """Authenticates sources and reports every refusal to `hooks`."""

    def __init__(self, sources: Sources, hooks: StageHooks | None = None) -> None:
        self.sources = sources
        self._hooks = hooks or StageHooks()

    @property
    def enforced(self) -> bool:
        return self.sources.enforced

    def authenticate_token(self, authorization: str | None, *, peer: str | None = None) -> SourceBinding:
        """The source of an ``Authorization: Bearer <token>`` header, or AuthenticationFailed (reported)."""
        if not authorization:
            raise self.refuse("http", "no Authorization header", peer=peer)
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self.refuse("http", "the Authorization header is not 'Bearer <token>'", peer=peer)
        found = self.sources.identify(token.strip())
        if found is None:
            raise self.refuse("http", "unknown token", peer=peer)
        binding, used = found
        self._hooks.authenticated(binding.id, used)  # which token a source still uses, for its rotation
        return binding

    def authenticate_user(self, user: str | None, *, channel: str = "amqp", peer: str | None = None) -> SourceBinding:
        """The source of a broker user (the validated `user_id` of a message), or AuthenticationFailed."""
        binding = self.sources.by_amqp_user(user) if user else None
        if binding is None:
            raise self.refuse(channel, "message without user_id" if not user else "no source has this broker user",
                              peer=peer)
        return binding

    def refuse(self, channel: str, reason: str, *, peer: str | None = None) -> AuthenticationFailed:
        """Report a failed authentication; returns the error to raise."""
        self._hooks.auth_failed(channel, reason, peer)
        return AuthenticationFailed(reason)

    def forbidden(self, refusal: SourceForbidden, *, kind: str | None = None) -> None:
        """Report a known source refused for a municipality (the intake stage calls it)."""
        self._hooks.forbidden(refusal, kind)


class TenantGuardSink:
    """The last line at the sink: a message of another municipality is never delivered.

    It can reach a destination's queue only around the route stage (a replayed dead letter of
    an older configuration, a hand-published message); it is dead-lettered (A410), not sent."""

    def __init__(self, sink: Sink, destination: str, tenancy: Tenancy) -> None:
        self.sink = sink
        self.destination = destination
        self.tenancy = tenancy

    async def deliver(self, message: Outbound) -> Receipt:
        refusal = self._refusal(message)
        if refusal is not None:
            raise refusal
        return await self.sink.deliver(message)

    @property
    def batch_size(self) -> int:
        """The guarded sink's (bus.ports.batch_size_of): 1 unless it takes batches."""
        return batch_size_of(self.sink)

    async def deliver_many(self, messages: Sequence[Outbound]) -> list[ItemResult]:
        """The guarded batch sink's answers; another municipality's message refused alone."""
        results: list[ItemResult | None] = [self._refusal(m) for m in messages]
        admitted = [m for m, refused in zip(messages, results, strict=True) if refused is None]
        sink: BatchSink = self.sink  # type: ignore[assignment]  # only called when batch_size > 1
        answers = iter(await sink.deliver_many(admitted) if admitted else [])
        return [r if r is not None else next(answers) for r in results]

    def _refusal(self, message: Outbound) -> PermanentError | None:
        municipality = message.envelope.municipality
        if self.tenancy.admits(self.destination, municipality):
            return None
        log.warning("cross-tenant delivery refused", destination=self.destination, municipality=municipality,
                    message_id=message.envelope.message_id)
        return PermanentError(f"{CROSS_TENANT}: destination {self.destination} does not belong to "
                              f"municipality {municipality}; not delivered")

    async def aclose(self) -> None:
        close = getattr(self.sink, "aclose", None)
        if close is not None:
            await close()
