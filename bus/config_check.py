"""The checks of `renkei.toml` that need more than the file: its destinations against the routes
and their transports. `renkei run` and `renkei status` make them alike (Bus and bus.cli.config).

A destination whose name is a near miss of a route destination no one configured
(`[destinations.zeii]` beside routes to `zei`) and an option its transport does not take
(`concurency`) are a ConfigError naming file:line and the name most likely meant. A destination
no route names and that resembles none is allowed: its queue is declared and waits empty. A
destination that pins a `schema_version` its routes' target kinds do not have is one too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bus.errors import ConfigError
from bus.settings import Settings
from bus.suggest import closest, suggest, unknown_keys

__all__ = ["DESTINATION_KEYS", "UNPINNED_SOURCES", "check_destinations", "check_pins", "pinned_routes", "pins_of"]

#: source kinds whose routes a pin does not apply to: a 支援措置 (jumin.shien) goes to a pinned
#: destination as its one version, beside the pinned version of its resident changes
UNPINNED_SOURCES = ("jumin.shien",)

#: the keys of a `[destinations.<name>]` table that are the bus's own; the rest go to its transport
DESTINATION_KEYS = ("transport", "concurrency", "retry", "system", "municipality", "municipalities",
                    "schema_version")


def check_destinations(settings: Settings, route_destinations: Iterable[str],
                       sink_options: Callable[[str], frozenset[str] | None]) -> None:
    """No configured destination is a misspelt route destination (by its name or its `system`),
    and each names only options its transport takes (`sink_options(transport)`: adapters.registry's,
    passed in by the assembly; None: any)."""
    routed = sorted(set(route_destinations))
    configured = set(settings.destinations) | {c.system for c in settings.destinations.values() if c.system}
    for name, config in settings.destinations.items():
        section = f"destinations.{name}"
        system = config.system or name
        meant = closest(system, routed)
        # a destination no route names is allowed (its queue waits empty: a simulator's peer, a system
        # being wired up); one whose name is a near miss of a routed one nobody configured is a typo
        if name not in routed and system not in routed and meant is not None and meant not in configured:
            key = "system" if config.system else None
            raise ConfigError(
                f"[{section}]: no route addresses {system!r}{suggest(system, routed)} "
                f"(the routes address: {', '.join(routed) or 'nothing'})", where=settings.where(section, key))
        takes = sink_options(config.transport)
        if takes is None:
            continue
        unknown = sorted(set(config.options) - takes)
        if unknown:
            known = [*DESTINATION_KEYS, *sorted(takes)]
            raise ConfigError(f"{unknown_keys(f'[{section}]', unknown, known)} "
                              f"(transport {config.transport!r})", where=settings.where(section, unknown[0]))


def pins_of(settings: Settings) -> dict[str, int]:
    """destination → the schema version it pins (`[destinations.<name>] schema_version`), pinned ones only."""
    return {name: c.schema_version for name, c in settings.destinations.items() if c.schema_version is not None}


def check_pins(settings: Settings, routes: Iterable[Any], versions: Callable[[str], list[int]]) -> None:
    """Every version a destination pins exists for the target kind of every route that reaches it
    (by its name or its `system`), but a route taking a 支援措置 (`UNPINNED_SOURCES`); `versions(kind)`
    is the catalog's."""
    routes = list(routes)
    for name, pinned in pins_of(settings).items():
        system = settings.destinations[name].system or name
        for route in routes:
            if route.destination not in (name, system) or route.takes in UNPINNED_SOURCES:
                continue
            kind = route.projection.kind
            known = versions(kind)
            if pinned not in known:
                raise ConfigError(f"[destinations.{name}] schema_version = {pinned}: route {route.name} sends it "
                                  f"{kind}, which has versions {', '.join(map(str, known))}",
                                  where=settings.where(f"destinations.{name}", "schema_version"))


def pinned_routes(pins: Mapping[str, int], systems: Mapping[str, str], routes: Iterable[Any],
                  kind: str) -> list[str]:
    """`destination vN (route r)` for each pinned destination a route projecting to `kind` reaches."""
    found = []
    for route in routes:
        if route.projection.kind != kind:
            continue
        found += [f"{name} v{version} (route {route.name})" for name, version in pins.items()
                  if route.destination in (name, systems.get(name) or name)]
    return sorted(found)
