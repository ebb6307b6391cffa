"""Every read and write the console makes of the bus, in one place (so one place to re-point).

The console never opens a bus file or table itself: it calls the bus's public functions —
`bus.status.gather_status` for the figures, the delivery store and `DeadLetters` for the dead
letters (as `renkei dead` does), the audit log and `bus.audit.trail` for a message's life, a
resident's trail, verify, checkpoints and export (as `renkei audit` does). Each call opens
what it needs and closes it again, as the CLI commands do, so the console may run inside
`renkei run` or on its own beside it.

Scope: the caller passes the municipalities an account may see (None: every one); figures,
letters and records of others are left out here, before any page sees them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bus.audit.events import AuditEvent, EventType
from bus.audit.export import export_municipality
from bus.audit.hooks import AuditOperatorEvents
from bus.audit.log import AuditLog
from bus.audit.trail import TrailEntry, resident_trail
from bus.brokers import broker_for
from bus.brokers.base import Broker
from bus.catalog import Catalog
from bus.delivery.dead import DeadLetterNotFound, DeadLetters, Shown
from bus.delivery.store import DeadFilter, DeadLetter, DeliveryStore
from bus.envelope import Envelope
from bus.errors import RenkeiError
from bus.logs import scrub
from bus.settings import Settings
from bus.status import DestinationStatus, SourceStatus, StatusReport, gather_status
from bus.topology import StateDir

__all__ = [
    "AuditSummary",
    "BusData",
    "DeadLetter",
    "DeadLetterNotFound",
    "DestinationStatus",
    "EventType",
    "LifeRecord",
    "RenkeiError",
    "Shown",
    "SourceStatus",
    "StatusReport",
    "TrailEntry",
    "scrub",
]

Scope = frozenset[str] | None  # municipalities an account may see; None: all


@dataclass(frozen=True, slots=True)
class LifeRecord:
    """One audit record of a message's life, as a page shows it (no personal data is in it)."""

    seq: int
    at: str
    event: str
    municipality: str
    subject: str
    destination: str
    route: str
    legal_basis: str
    receipt: str
    actor: str
    reason: str
    codes: tuple[str, ...]
    message_id: str


@dataclass(frozen=True, slots=True)
class AuditSummary:
    ok: bool
    records: int
    checkpoints: int
    last_checkpoint_seq: int
    last_checkpoint_at: str | None
    first_problem: str | None
    location: str


class _ReasonedEvents(AuditOperatorEvents):
    """The operator's events with the reason the console asked for on a replay."""

    def __init__(self, log: AuditLog, reason: str) -> None:
        super().__init__(log)
        self._log = log
        self._reason = reason

    def replayed(self, letter: DeadLetter, by: str) -> None:
        self._log.append([AuditEvent.of(EventType.REPLAYED, Envelope.from_headers(letter.headers),
                                        codes=[letter.code], actor=by,
                                        reason=f"replay of dead letter {letter.id}: {self._reason}")])


class BusData:
    """The console's window on one bus (its settings); `broker`: the running bus's own, if any."""

    def __init__(self, settings: Settings, *, broker: Broker | None = None,
                 destinations: Callable[[], Iterable[str]] = tuple) -> None:
        self.settings = settings
        self._broker = broker
        self._destinations = destinations
        self._catalog: Catalog | None = None

    # -- figures ---------------------------------------------------------------------------

    async def status(self) -> StatusReport:
        return await gather_status(self.settings, self._destinations())

    def destination_municipalities(self, name: str) -> frozenset[str] | None:
        """The municipalities a destination serves; None: any (a bus of one)."""
        config = self.settings.destinations.get(name)
        if config is not None and config.municipalities:
            return frozenset(config.municipalities)
        served = self.settings.bus.municipalities
        return frozenset(served) if served else None

    def source_municipalities(self, name: str) -> frozenset[str] | None:
        config = self.settings.sources.get(name)
        if config is not None:
            return frozenset(config.municipalities)
        served = self.settings.bus.municipalities
        return frozenset(served) if served else None

    @property
    def municipalities(self) -> tuple[str, ...]:
        return self.settings.bus.municipalities

    # -- dead letters ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _store(self) -> Iterator[DeliveryStore | None]:
        state_dir = StateDir(self.settings.bus.state_dir)
        if not state_dir.delivery_file.exists():
            yield None
            return
        store = state_dir.open_delivery()
        try:
            yield store
        finally:
            store.close()

    def dead_letters(self, scope: Scope, *, destination: str | None = None, municipality: str | None = None,
                     code: str | None = None, since: float | None = None, limit: int = 1000) -> list[DeadLetter]:
        """Unresolved dead letters that match, oldest first, only of `scope`'s municipalities."""
        asked = [municipality] if municipality else (sorted(scope) if scope is not None else [None])
        found: list[DeadLetter] = []
        with self._store() as store:
            if store is None:
                return []
            for m in asked:
                if scope is not None and (m is None or m not in scope):
                    continue
                where = DeadFilter(destination=destination or None, municipality=m, code=code or None,
                                   since=since, state="dead")
                found.extend(store.dead_list(where, limit))
        return sorted(found, key=lambda d: (d.dead_at, d.id))[:limit]

    def dead_letter(self, dead_id: int, scope: Scope) -> DeadLetter | None:
        with self._store() as store:
            letter = store.dead(dead_id) if store is not None else None
        if letter is None or (scope is not None and letter.municipality not in scope):
            return None
        return letter

    def show(self, dead_id: int, scope: Scope, *, unmasked_by: str | None = None) -> Shown | None:
        """A letter's message decoded, masked unless `unmasked_by` (audited as that operator)."""
        if self.dead_letter(dead_id, scope) is None:
            return None
        with self._store() as store, AuditLog.open(self.settings) as log:
            assert store is not None
            letters = DeadLetters(store, broker_for(self.settings), self._catalog_(), AuditOperatorEvents(log))
            return letters.show(dead_id, unmasked_by=unmasked_by)

    @contextlib.asynccontextmanager
    async def _letters(self, reason: str) -> AsyncIterator[DeadLetters]:
        broker = self._broker
        own = broker is None
        if broker is None:
            broker = broker_for(self.settings)
            await broker.connect()
        try:
            with self._store() as store, AuditLog.open(self.settings) as log:
                if store is None:
                    raise DeadLetterNotFound("no delivery store yet: the bus has not run with this state_dir")
                yield DeadLetters(store, broker, self._catalog_(), _ReasonedEvents(log, reason))
        finally:
            if own:
                await broker.close()

    async def replay(self, ids: Sequence[int], scope: Scope, *, by: str, reason: str,
                     progress: Callable[[int, int], None] | None = None) -> list[int]:
        """Replay each letter of `ids` that `scope` may touch; returns those replayed."""
        return await self._resolve(ids, scope, by=by, reason=reason, discard=False, progress=progress)

    async def discard(self, ids: Sequence[int], scope: Scope, *, by: str, reason: str,
                      progress: Callable[[int, int], None] | None = None) -> list[int]:
        return await self._resolve(ids, scope, by=by, reason=reason, discard=True, progress=progress)

    async def _resolve(self, ids: Sequence[int], scope: Scope, *, by: str, reason: str, discard: bool,
                       progress: Callable[[int, int], None] | None) -> list[int]:
        if not reason.strip():
            raise RenkeiError("a reason is required: the audit trail keeps it")
        allowed = [i for i in ids if self.dead_letter(i, scope) is not None]
        done: list[int] = []
        async with self._letters(reason) as letters:
            for n, dead_id in enumerate(allowed, 1):
                if discard:
                    await letters.discard(dead_id, by=by, reason=reason)
                else:
                    await letters.replay(dead_id, by=by)
                done.append(dead_id)
                if progress is not None:
                    progress(n, len(allowed))
        return done

    # -- the audit trail ---------------------------------------------------------------------

    def life(self, message_id: str, scope: Scope) -> list[LifeRecord]:
        """Every record of one message, in order; none when the message is of another municipality."""
        with AuditLog.open(self.settings) as log:
            records = log.life(message_id)
        shown = [r for r in records if scope is None or (r.event.municipality or "") in scope]
        if len(shown) != len(records):
            return []  # a message of another municipality: as if there were none
        return [_life(r.seq, r.event) for r in shown]

    def resident(self, address_number: str, scope: Scope) -> list[TrailEntry]:
        """Who received this resident's data (the 宛名番号 is pseudonymised, never kept)."""
        keys = [self.settings.bus.pseudonym_key, *self.settings.audit.previous_pseudonym_keys]
        asked = sorted(scope) if scope is not None else list(self.settings.bus.municipalities)
        with AuditLog.open(self.settings) as log:
            return resident_trail(log.store, address_number, keys=keys, municipalities=asked)

    def verify(self) -> AuditSummary:
        with AuditLog.open(self.settings) as log:
            report = log.verify()
            checkpoints = log.store.checkpoints()
            location = log.store.location
        last = checkpoints[-1] if checkpoints else None
        first = report.first
        return AuditSummary(first is None, report.records, report.checkpoints, report.last_checkpoint,
                            last.signed_at if last else None, str(first) if first else None, location)

    def open_audit(self) -> AuditLog:
        """The trail of this bus, opened (the caller closes it)."""
        return AuditLog.open(self.settings)

    def audit_location(self) -> str:
        return self.settings.audit_store.split("@")[-1]  # a URL's password never shows

    def head_seq(self) -> int:
        with AuditLog.open(self.settings) as log:
            return log.store.head().seq

    def last_checkpoint_seq(self) -> tuple[int, str | None]:
        with AuditLog.open(self.settings) as log:
            checkpoints = log.store.checkpoints()
        return (checkpoints[-1].seq, checkpoints[-1].signed_at) if checkpoints else (0, None)

    def signs_checkpoints(self) -> bool:
        return self.settings.audit.signing_key is not None

    def records_after(self, seq: int, limit: int = 5000) -> list[LifeRecord]:
        with AuditLog.open(self.settings) as log:
            return [_life(r.seq, r.event) for r in log.store.page(seq, limit)]

    def export(self, municipality: str, out: TextIO) -> int:
        with AuditLog.open(self.settings) as log:
            return export_municipality(log.store, municipality, out).records

    def record_console_event(self, event: EventType, *, actor: str, reason: str,
                             municipality: str | None = None) -> None:
        """A console event of no message (a failed login, an export): appended to the trail."""
        with AuditLog.open(self.settings) as log:
            log.append([AuditEvent(event, municipality=municipality, source="console", actor=actor, reason=reason)])

    def _catalog_(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog.load()
        return self._catalog

    @property
    def state_dir(self) -> Path:
        return self.settings.bus.state_dir


def _life(seq: int, e: Any) -> LifeRecord:
    return LifeRecord(seq, e.at, str(e.event), e.municipality or "", e.subject or "", e.destination or "",
                      e.route or "", e.legal_basis or "", e.receipt or "", e.actor or "", scrub(e.reason or ""),
                      tuple(e.codes), e.message_id or "")
