"""Tenants (DESIGN §8) as plain data: one bus, several municipalities, their messages never mixed.

Two bindings, both from `renkei.toml` (docs/tenants.md):

- a **source** (`[sources.<id>]`, id = the envelope's `source`) may submit only for its
  `municipalities`; it proves who it is with a bearer token (HTTP intake), an inbox
  directory of its own (directory source) or a broker user (AMQP intake, RabbitMQ's
  validated `user_id`). `Sources` answers "who is this token / user" and "may this source
  submit for municipality M"; the intake's gate (bus.stages.gate.Gate) asks it and records
  every refusal.
- a **destination** (`[destinations.<name>]`) belongs to one or more municipalities and
  serves one `system` (the name a route's `destination` uses; default its own name).
  `Tenancy` maps a route's destination and a change's municipality to the concrete
  destinations that may receive it (`targets`), and is asked again at the delivery
  boundary (`admits`): the route stage refuses a projection for a destination of another
  municipality whatever the route says, and bus.stages.gate.TenantGuardSink refuses it at the sink.

Tokens are never kept: only their SHA-256 digest, compared in constant time. This module
imports nothing but the errors, so settings may use it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bus.errors import SourceForbidden

__all__ = [
    "CROSS_TENANT",
    "DestinationTenant",
    "SourceBinding",
    "Sources",
    "Tenancy",
    "hash_token",
    "new_token",
    "token_digest",
    "token_digests",
    "token_id",
]

#: stable codes of the refusals (docs/error-codes.md, A4xx)
CROSS_TENANT = "A410"  # a projection addressed to a destination of another municipality
HASH_SCHEME = "sha256:"
MIN_TOKEN_LENGTH = 32


def hash_token(token: str) -> str:
    """The form a token is configured in without the token itself: ``sha256:<hex>``."""
    return HASH_SCHEME + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh bearer token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_digests(configured: str) -> tuple[bytes, ...]:
    """The digests of every token in a token file or variable: one per line (blank lines and
    ``#`` comments are ignored; a variable may separate them with spaces). Two at once is how a
    token is rotated: add the new one, hand it over, remove the old one when `renkei status`
    shows it unused.

    Raises ValueError for a malformed entry, none at all, or one listed twice."""
    entries = [word for line in configured.splitlines() if not line.lstrip().startswith("#")
               for word in line.split()]
    if not entries:
        raise ValueError("no token in it (one token or sha256:… hash per line)")
    digests: list[bytes] = []
    for n, entry in enumerate(entries, 1):
        try:
            digest = token_digest(entry)
        except ValueError as exc:
            raise ValueError(f"entry {n}: {exc}" if len(entries) > 1 else str(exc)) from None
        if digest in digests:
            raise ValueError(f"entry {n} is the same token as entry {digests.index(digest) + 1}")
        digests.append(digest)
    return tuple(digests)


def token_id(digest: bytes) -> str:
    """A token's name in counters and `renkei status`: the start of its configured hash form
    (``sha256:<first 12 hex>``), which says nothing of the token itself."""
    return HASH_SCHEME + digest.hex()[:12]


def token_digest(configured: str) -> bytes:
    """The SHA-256 digest of a configured token: the token itself, or ``sha256:<64 hex>``.

    Raises ValueError when it is neither a long enough token nor a well-formed hash."""
    text = configured.strip()
    if text.startswith(HASH_SCHEME):
        hexdigest = text[len(HASH_SCHEME):]
        if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
            raise ValueError("a token hash is 'sha256:' and 64 lower-case hex digits")
        return bytes.fromhex(hexdigest)
    if len(text) < MIN_TOKEN_LENGTH or any(c.isspace() for c in text):
        raise ValueError(f"a token is at least {MIN_TOKEN_LENGTH} characters without spaces "
                         "(make one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return hashlib.sha256(text.encode()).digest()


@dataclass(frozen=True, slots=True)
class SourceBinding:
    """One `[sources.<id>]`: who the source is and what it may submit for."""

    id: str
    municipalities: frozenset[str]
    token_sha256s: tuple[bytes, ...] = field(default=(), repr=False)  # more than one while rotating
    inbox: Path | None = None
    amqp_user: str | None = None

    def may_submit_for(self, municipality: str) -> bool:
        return municipality in self.municipalities


class Sources:
    """The configured sources. Without any, the intake is open (development): every
    source id is taken on trust and may submit for every municipality the bus serves."""

    def __init__(self, bindings: Iterable[SourceBinding] = ()) -> None:
        self._by_id = {b.id: b for b in bindings}
        self._tokens = [(digest, b) for b in self._by_id.values() for digest in b.token_sha256s]
        self._by_user = {b.amqp_user: b for b in self._by_id.values() if b.amqp_user}

    @property
    def enforced(self) -> bool:
        return bool(self._by_id)

    def __iter__(self) -> Iterator[SourceBinding]:
        return iter(self._by_id.values())

    def get(self, source: str) -> SourceBinding | None:
        return self._by_id.get(source)

    def by_token(self, token: str) -> SourceBinding | None:
        """The source whose token this is (see `identify`)."""
        found = self.identify(token)
        return found[0] if found else None

    def identify(self, token: str) -> tuple[SourceBinding, str] | None:
        """The source whose token this is and the token's id (`token_id`); every configured
        digest is compared (constant time, no early exit), so the answer's timing says nothing
        about which tokens exist."""
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for configured, binding in self._tokens:
            if hmac.compare_digest(configured, digest):
                found = binding, token_id(configured)
        return found

    def by_amqp_user(self, user: str) -> SourceBinding | None:
        return self._by_user.get(user)

    def check(self, source: str, municipality: str) -> None:
        """Raise SourceForbidden unless `source` may submit for `municipality`."""
        if not self.enforced:
            return
        binding = self._by_id.get(source)
        if binding is None:
            raise SourceForbidden(source, municipality, f"source {source!r} is not configured ([sources.{source}])")
        if not binding.may_submit_for(municipality):
            raise SourceForbidden(source, municipality, f"source {source!r} may not submit for municipality "
                                  f"{municipality} (it may for {', '.join(sorted(binding.municipalities))})")


class _DestinationConfig(Protocol):
    @property
    def system(self) -> str: ...
    @property
    def municipalities(self) -> frozenset[str] | None: ...


@dataclass(frozen=True, slots=True)
class DestinationTenant:
    """A destination's tenancy: the system it is, the municipalities it belongs to (None: any)."""

    name: str
    system: str
    municipalities: frozenset[str] | None

    def serves(self, municipality: str) -> bool:
        return self.municipalities is None or municipality in self.municipalities


class Tenancy:
    """Which destinations a route's destination names, per municipality, and the guard.

    A route's `destination` is a *system* (`zei`): it addresses every configured destination
    of that system that serves the change's municipality (`[destinations.zei-131016]
    system = "zei"`, `municipality = "131016"`). A route may also name one destination
    directly (`destination: zei-131016`); then only the guard (`admits`) stands between a
    careless route and another municipality's destination, and it always asks.

    `strict` (a bus of several municipalities, or any destination bound to one): a route's
    destination that names no configured destination addresses nothing (a queue shared by
    every municipality would mix them); otherwise it addresses the queue of that name.
    """

    def __init__(self, destinations: Mapping[str, _DestinationConfig] | None = None, *, strict: bool = False) -> None:
        self.strict = strict
        self._by_name = {
            name: DestinationTenant(name, config.system or name, config.municipalities)
            for name, config in (destinations or {}).items()
        }
        self._by_system: dict[str, list[DestinationTenant]] = {}
        for tenant in self._by_name.values():
            self._by_system.setdefault(tenant.system, []).append(tenant)

    def targets(self, destination: str, municipality: str) -> list[str]:
        """The destinations a route addressing `destination` sends a change of `municipality` to."""
        if destination in self._by_system:
            return [t.name for t in self._by_system[destination] if t.serves(municipality)]
        if destination in self._by_name:
            return [destination]  # a route naming one destination: the guard decides
        return [] if self.strict else [destination]

    def admits(self, destination: str, municipality: str) -> bool:
        """May `destination` receive a change of `municipality`? The delivery boundary's question."""
        tenant = self._by_name.get(destination)
        if tenant is None:
            return not self.strict
        return tenant.serves(municipality)

    def addressable(self, route_destinations: Iterable[str]) -> list[str]:
        """Every destination (queue) the routes can address, for declaring queues."""
        names: set[str] = set()
        for destination in route_destinations:
            if destination in self._by_system:
                names.update(t.name for t in self._by_system[destination])
            elif destination in self._by_name or not self.strict:
                names.add(destination)
        return sorted(names)

    def unaddressed(self, route_destinations: Iterable[str]) -> list[str]:
        """Route destinations that name no configured destination (strict: they address nothing)."""
        return sorted({d for d in route_destinations if d not in self._by_system and d not in self._by_name})

    def tenant(self, destination: str) -> DestinationTenant | None:
        return self._by_name.get(destination)
