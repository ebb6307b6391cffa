"""How `renkei run` runs the console beside the bus: one call at start, one at stop.

    stop = await start_with_bus(settings, bus)     # None when [console] enabled is not true
    ...
    if stop: await stop()
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bus.console.config import console_options
from bus.console.web import Console
from bus.errors import ConfigError
from bus.settings import Settings

__all__ = ["start_with_bus"]


async def start_with_bus(settings: Settings, bus: Any = None, *, say: Callable[[str], None] = print,
                         force: bool = False) -> Callable[[], Awaitable[None]] | None:
    """Start the console of `settings` (on the running `bus`'s broker, when given) if
    `[console] enabled` (or `force`); returns its stop, or None when it is off."""
    options = console_options(settings)
    if not (options.enabled or force):
        return None
    destinations = (lambda: bus.destinations) if bus is not None else tuple
    console = Console(settings, options, broker=getattr(bus, "broker", None), destinations=destinations)
    try:
        await console.start()
    except OSError as exc:
        raise ConfigError(f"[console] cannot listen on {options.host}:{options.port} ({exc.strerror or exc}): "
                          "choose another port", where=str(settings.source_file or "[console]")) from exc
    say(f"console on {console.url}/ (accounts: `renkei users add`; metrics on {console.url}/metrics)")
    return console.stop
