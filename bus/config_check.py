"""The checks of `renkei.toml` that need more than the file: its destinations against the routes
and their transports. `renkei run` and `renkei status` make them alike (Bus and bus.cli.config).

A destination whose name is a near miss of a route destination no one configured
(`[destinations.zeii]` beside routes to `zei`) and an option its transport does not take
(`concurency`) are a ConfigError naming file:line and the name most likely meant. A destination
no route names and that resembles none is allowed: its queue is declared and waits empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bus.errors import ConfigError
from bus.settings import Settings
from bus.suggest import closest, suggest, unknown_keys

__all__ = ["DESTINATION_KEYS", "check_destinations"]

#: the keys of a `[destinations.<name>]` table that are the bus's own; the rest go to its transport
DESTINATION_KEYS = ("transport", "concurrency", "retry", "system", "municipality", "municipalities")


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
