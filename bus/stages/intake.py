"""The intake stage: where every source's message enters the bus (DESIGN §3, §5).

validate → derive the envelope (pseudonymous ids) → duplicate? → publish, confirmed → "accepted".
A source hears "accepted" only after the broker confirmed the message durable. A rejected
message is kept, with its issues, in the rejected store; nothing accepted is ever lost.
With sources configured (bus.tenancy), a source may submit only for its own municipalities:
another municipality's change raises SourceForbidden (audited `forbidden`, not stored),
valid or not: an invalid message whose 地方公共団体コード can still be read is checked too.

What happens is reported to the stage's hooks (audit, counters, log: bus.stages.hooks), and
they have kept it (`written`) before the source hears the answer. `ValidationFailed` never
escapes: a source hears "rejected" with the issues (bus.ports.Submission).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bus.brokers.base import Broker, OutgoingMessage
from bus.catalog import Catalog, KindSchema
from bus.envelope import Envelope
from bus.errors import SourceForbidden, ValidationFailed
from bus.groupcommit import GroupCommit
from bus.masking import Pseudonymizer
from bus.ports import RawMessage, Submission
from bus.stages.gate import Gate
from bus.stages.handoff import Decoded
from bus.stages.hooks import StageHooks
from bus.store_protocols import StateStoreProtocol
from bus.topology import INTAKE_QUEUE
from bus.validation.issues import Issue
from bus.validation.validator import Limits, validate

__all__ = ["IntakeStage", "RawMessage", "identity_of"]

#: kind → (municipality, person key, sequence): what a message's identity derives from.
_IDENTITY: dict[str, Callable[[dict[str, Any]], tuple[str, str, int]]] = {
    "jumin.idou": lambda r: (r["municipality_code"], r["address_number"], int(r["history_number"])),
    "portal.shinsei": lambda r: (r["municipality_code"], "shinsei:" + r["application_id"], 1),
    "pittari.shinsei": lambda r: (r["municipality_code"], "pittari:" + r["application_id"], 1),  # a batch's
    # a 支援措置 without a 異動: its own id (event_number), ordered after the 履歴番号 it follows
    "jumin.shien": lambda r: (r["municipality_code"], f"shien:{r['address_number']}:{int(r['event_number'])}",
                              int(r["history_number"])),
}
#: kind → the person key of its subject, where it is not the identity's: a 支援措置 is the
#: resident's (same subject as their changes: same shard, same order, same trail)
_SUBJECT: dict[str, Callable[[dict[str, Any]], str]] = {"jumin.shien": lambda r: r["address_number"]}


#: a valid message: its body, envelope, identity, kind and record (what `_publish_new` takes)
_Admitted = tuple[bytes, Envelope, tuple[str, str, int], KindSchema, dict[str, Any]]


def identity_of(kind: str, record: dict[str, Any]) -> tuple[str, str, int] | None:
    """The (municipality, person key, sequence) of a record, or None if the kind is not inbound."""
    fn = _IDENTITY.get(kind)
    return fn(record) if fn else None


class IntakeStage:
    """Implements bus.ports.Intake for every source."""

    def __init__(
        self,
        broker: Broker,
        catalog: Catalog,
        state: StateStoreProtocol,
        pseudonyms: Pseudonymizer,
        *,
        limits: Limits | None = None,
        municipalities: tuple[str, ...] = (),
        hooks: StageHooks | None = None,
        gate: Gate | None = None,
        previous_pseudonyms: Sequence[Pseudonymizer] = (),
        decoded: Decoded | None = None,
    ) -> None:
        self._broker = broker
        self._catalog = catalog
        self._state = state
        self._pseudonyms = pseudonyms
        self._limits = limits or Limits()
        self._municipalities = frozenset(municipalities)
        self._hooks = hooks or StageHooks()
        self._gate = gate
        self._previous = tuple(previous_pseudonyms)  # earlier keys: a change seen before a rotation
        self._decoded = decoded  # the accepted records, for this process's route stage (bus.stages.handoff)
        self._accepting: GroupCommit[_Admitted] = GroupCommit(self._accept)

    async def submit(
        self, raw: bytes, *, content_type: str, source: str, kind: str | None = None
    ) -> Submission:
        """Validate, deduplicate and publish one message; its audit events are in the trail
        before the source hears the answer (a crash loses no event of an answered submit).

        Validated here, in the caller's task; the valid ones of concurrent callers (the HTTP
        intake's requests, the feeders of `renkei demo`) are then published together: one
        confirmed `publish_many`, one commit of their seen ids, one flush of their events per
        batch (bus.groupcommit: what arrives while a batch is published forms the next), in the
        order they arrived. Each caller still hears its own answer; a broker failure fails the
        batch it was in (nothing of it marked seen, as for one message)."""
        try:
            admitted = self._admit(raw, content_type=content_type, source=source, kind=kind)
        except BaseException:
            await self._hooks.written()
            raise
        if isinstance(admitted, Submission):
            await self._hooks.written()
            return admitted
        answer: Submission = await self._accepting.submit((raw, *admitted))
        return answer

    async def backlog(self) -> int | None:
        """What the broker holds (Broker.backlog; None: it does not count): a bulk file of this
        intake keeps pace with it (adapters.sources.ingest)."""
        return await self._broker.backlog()

    def hand_records_to(self, decoded: Decoded | None) -> None:
        """Keep each accepted change's record in `decoded` for a route stage of this process
        (bus.stages.handoff); None: keep none."""
        self._decoded = decoded

    async def aclose(self) -> None:
        """Finish the submits in flight and stop their writer task (after the sources have
        stopped; a later submit starts a new one)."""
        accepting, self._accepting = self._accepting, GroupCommit(self._accept)
        await accepting.drain()
        await accepting.aclose()

    async def handle(self, batch: Sequence[RawMessage]) -> list[Submission]:
        """`submit_many` (the name the stages' batch shape uses)."""
        return await self.submit_many(batch)

    async def submit_many(self, batch: Sequence[RawMessage]) -> list[Submission]:
        """Submit a batch (a bulk file's records) in order, answering each message for itself:
        every one validated and deduplicated as `submit` does, the new ones published in one
        confirmed `publish_many` (per-resident order kept: the batch's order), then marked seen;
        the events are kept once, before the answers return. A refused message (SourceForbidden)
        answers "rejected" for itself and the rest go on; a change twice in the batch is a
        duplicate of its first. A broker failure raises (nothing of the batch marked seen: sent
        again, the published ones are dropped by the route stage as already routed)."""
        answers: list[Submission | None] = [None] * len(batch)
        valid: list[_Admitted] = []
        where: list[int] = []
        try:
            for i, m in enumerate(batch):
                try:
                    admitted = self._admit(m.raw, content_type=m.content_type, source=m.source, kind=m.kind)
                except SourceForbidden as refusal:
                    answers[i] = Submission("rejected", None, m.kind, (Issue(refusal.code, str(refusal)),))
                    continue
                if isinstance(admitted, Submission):
                    answers[i] = admitted
                    continue
                valid.append((m.raw, *admitted))
                where.append(i)
            for i, answer in zip(where, await self._publish_new(valid), strict=True):
                answers[i] = answer
        finally:
            await self._hooks.written()
        return [a for a in answers if a is not None]

    async def _accept(self, valid: list[_Admitted]) -> list[Submission]:
        """The concurrent submits' batch (see `submit`): published, and its events kept."""
        try:
            return await self._publish_new(valid)
        finally:
            await self._hooks.written()

    async def _publish_new(self, valid: Sequence[_Admitted]) -> list[Submission]:
        """Publish the valid messages not seen before (one confirmed `publish_many`), report them
        accepted (written), mark them seen; the answer of each, in order (a message twice in
        `valid` is a duplicate of its first)."""
        answers: list[Submission] = []
        fresh: list[Envelope] = []
        outgoing: list[tuple[str, OutgoingMessage]] = []
        taken: set[str] = set()
        kept: list[tuple[bytes, Envelope, KindSchema, dict[str, Any]]] = []
        before = self._seen_before(valid)
        for raw, envelope, _identity, kind, record in valid:
            seen_as = envelope.message_id if envelope.message_id in taken else before.get(envelope.message_id)
            if seen_as is not None:
                self._hooks.duplicate(envelope, seen_as)
                answers.append(Submission("duplicate", seen_as, envelope.kind))
                continue
            taken.add(envelope.message_id)
            fresh.append(envelope)
            kept.append((raw, envelope, kind, record))
            outgoing.append((INTAKE_QUEUE, OutgoingMessage(raw, envelope.message_id, envelope.subject,
                                                           envelope.to_headers())))
            answers.append(Submission("accepted", envelope.message_id, envelope.kind))
        if outgoing:
            await self._broker.publish_many(outgoing)  # raises unless every one is durable
            if self._decoded is not None:  # before any wait: this process's router may take them at once
                for raw, envelope, kind, record in kept:
                    self._decoded.keep(envelope.message_id, raw, kind, record)
            for envelope in fresh:
                self._hooks.accepted(envelope)
            # the counts and events first, then the seen ids: killed in between, the batch is accepted
            # again when it is sent again, and counted twice; the other way round its counts were lost
            # (marked seen, it answers "duplicate"; tests/unit/test_intake_counts_before_seen.py)
            await self._hooks.written()
            self._mark_seen(fresh)
        return answers

    def _admit(self, raw: bytes, *, content_type: str, source: str,
               kind: str | None) -> tuple[Envelope, tuple[str, str, int], KindSchema, dict[str, Any]] | Submission:
        """The envelope and identity of a valid message (reported received), or the rejection
        of an invalid one (kept in the rejected store); SourceForbidden for another's data."""
        try:
            validated = validate(raw, content_type=content_type, kind=kind, catalog=self._catalog, limits=self._limits)
            envelope, identity = self._envelope(validated.kind_schema, validated.record, content_type, source)
        except ValidationFailed as failed:
            self._check_source(source, failed.municipality, kind)  # invalid is no reason to keep B's data
            return self._reject(raw, failed.issues, content_type=content_type, source=source, kind=kind)
        self._hooks.received(envelope)
        return envelope, identity, validated.kind_schema, validated.record

    def _mark_seen(self, envelopes: Sequence[Envelope]) -> None:
        """Mark the batch's accepted ids seen, in one transaction where the store has a batch form."""
        many: Callable[[Sequence[tuple[str, str]]], None] | None = getattr(self._state, "mark_seen_many", None)
        if many is not None:
            many([(e.message_id, e.kind) for e in envelopes])
            return
        for e in envelopes:
            self._state.mark_seen(e.message_id, e.kind)

    def _seen_before(self, valid: Sequence[_Admitted]) -> dict[str, str]:
        """Of the batch's messages accepted before: message id -> the id it was accepted under, its
        id now or its id under a previous pseudonym key (after a rotation the same change has a new
        id, and without this it would be accepted, and delivered, a second time). One store query
        for the batch, and one per previous key for the rest (was: one or more per message, on
        the event loop)."""
        seen = {m: m for m in self._state.seen_among(list({e.message_id for _, e, *_ in valid}))}
        for previous in self._previous:
            old_of = {previous.message_id(*identity): e.message_id for _, e, identity, *_ in valid
                      if e.message_id not in seen}
            if not old_of:
                break
            for old in self._state.seen_among(list(old_of)):
                seen.setdefault(old_of[old], old)
        return seen

    def _check_source(self, source: str, municipality: str | None, kind: str | None) -> None:
        """Refuse (SourceForbidden, audited) an invalid message naming a municipality that this
        bus serves and `source` may not submit for: like a valid one, it is not kept. One naming
        no readable municipality, or one this bus does not serve, is rejected as invalid."""
        if self._gate is None or municipality is None:
            return
        if self._municipalities and municipality not in self._municipalities:
            return
        try:
            self._gate.sources.check(source, municipality)
        except SourceForbidden as refusal:
            self._gate.forbidden(refusal, kind=kind)
            raise

    def _envelope(self, ks: KindSchema, record: dict[str, Any], content_type: str,
                  source: str) -> tuple[Envelope, tuple[str, str, int]]:
        identity = identity_of(ks.kind, record)
        if identity is None:
            raise ValidationFailed([Issue("R220", f"kind {ks.kind} is not accepted at intake", path="/",
                                          expected=", ".join(_IDENTITY))])
        municipality, person, sequence = identity
        if self._municipalities and municipality not in self._municipalities:
            raise ValidationFailed([Issue("R450", f"municipality {municipality} is not served by this bus",
                                          path="/municipality_code",
                                          expected=", ".join(sorted(self._municipalities)))])
        self._check_source(source, municipality, ks.kind)  # not kept: it is another municipality's data
        return Envelope(
            message_id=self._pseudonyms.message_id(municipality, person, sequence),
            kind=ks.kind,
            schema_version=ks.version,
            content_type=content_type,
            municipality=municipality,
            source=source,
            subject=self._pseudonyms.subject(municipality, _SUBJECT[ks.kind](record) if ks.kind in _SUBJECT
                                             else person),
            sequence=sequence,
        ), identity

    def _reject(
        self, raw: bytes, issues: list[Issue], *, content_type: str, source: str, kind: str | None
    ) -> Submission:
        rejected_id = self._state.add_rejected(raw, source=source, content_type=content_type, kind=kind,
                                               issues=issues)
        self._hooks.rejected(source, kind, issues, rejected_id)
        return Submission("rejected", None, kind, tuple(issues))
