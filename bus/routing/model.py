"""What a route is, once loaded: plain frozen data (the compiled condition rides along)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bus.catalog import KindSchema
from bus.topology import destination_queue

__all__ = [
    "NamedProjection",
    "ProjectionFunction",
    "ProjectionInput",
    "ProjectionSpec",
    "Route",
    "RouteMatch",
]


@dataclass(frozen=True, slots=True)
class ProjectionSpec:
    """The transform of a route: the target kind, and a named projection function if any.

    Without `function` the generic projection copies, by name, exactly the fields the target
    kind declares (data minimisation is defined by the target schema).
    """

    kind: str
    function: str | None = None
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)


@dataclass(frozen=True, slots=True)
class Route:
    """One route of a route file (routes/*.yaml).

    `where` is "file:line" of the route's first key, for messages that point at it.
    """

    name: str
    destination: str
    takes: str
    when: str
    projection: ProjectionSpec
    legal_basis: str | None = None
    description: str = ""
    municipalities: frozenset[str] | None = None
    where: str = ""
    program: Any = field(default=None, compare=False, repr=False, hash=False)  # cel.Program

    @property
    def queue(self) -> str:
        """The destination queue this route publishes to."""
        return destination_queue(self.destination)

    @property
    def may_carry_personal_number(self) -> bool:
        """Only a route with a declared legal basis (番号法) may carry the 個人番号."""
        return self.legal_basis is not None

    def applies_to(self, municipality: str) -> bool:
        return self.municipalities is None or municipality in self.municipalities


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A route that matched a message: the route, its target kind schema, the projected record."""

    route: Route
    target: KindSchema
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ProjectionInput:
    """What a named projection function gets beside the source record.

    `copy` is the generic projection for the target kind (fields by name, without the
    fields this route may not carry), so a function only computes what differs.
    """

    route: Route
    target: KindSchema
    context: Mapping[str, Any]  # the condition context of this message (no personal data)
    message_id: str | None
    copy: Callable[[Mapping[str, Any]], dict[str, Any]]


ProjectionFunction = Callable[[Mapping[str, Any], ProjectionInput], dict[str, Any]]


def _no_params(params: Mapping[str, Any]) -> list[str]:
    return [f"this projection takes no params, got {', '.join(map(str, params))}"] if params else []


@dataclass(frozen=True, slots=True)
class NamedProjection:
    """A projection function registered by name (routes name it in `projection.function`).

    `never` are field names this projection must never output, whatever the target spec
    declares; `check_params` returns what is wrong with a route's `params` (at load time).
    """

    name: str
    target_kind: str
    function: ProjectionFunction
    description: str = ""
    never: frozenset[str] = frozenset()
    check_params: Callable[[Mapping[str, Any]], list[str]] = _no_params
