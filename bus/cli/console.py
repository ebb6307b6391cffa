"""`renkei console`: the web console alone, beside a bus that runs elsewhere on the same state.

    renkei console --config renkei.toml [--host H] [--port P]

It reads what the bus writes (state_dir, delivery store, audit trail, broker) and serves the
pages, /metrics, /healthz and /readyz on [console] host:port (default 127.0.0.1:8090), until
SIGINT or SIGTERM. Accounts: `renkei users add`. `renkei run` serves the same console itself
when `[console] enabled = true`. Exit status 0; 2 on a configuration error (or a port in
use); 1 when no account exists yet (nobody could log in).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from adapters.server import EmbeddedServer
from bus.cli.config import CONFIG_ERROR, RUNTIME_ERROR, fail, load_settings, route_destinations
from bus.errors import ConfigError
from bus.logs import configure_logging
from bus.settings import Settings

__all__ = ["console", "start_with_bus"]


@click.command("console")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The bus's renkei.toml (its [console] table; RENKEI_CONSOLE_* override it).")
@click.option("--host", default=None, help="Listen on this address (default: [console] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Listen on this port (default: [console] port, 8090).")
def console(config: Path, host: str | None, port: int | None) -> None:
    """Serve the web console of the bus of CONFIG until interrupted.

    Exit status: 0 stopped by SIGINT or SIGTERM, 2 a configuration error (no accounts, a port
    that cannot be listened on)."""
    from bus.console import Accounts, Console, console_options
    from bus.console.oidc import oidc_options

    settings = load_settings("console", config)
    try:
        options = console_options(settings, host=host, port=port)
        oidc = oidc_options(settings)
    except ConfigError as exc:
        fail("console", str(exc))
    assert options.users_file is not None
    if not Accounts(options.users_file).names() and oidc is None:  # nobody could log in
        fail("console", f"no accounts in {options.users_file}: add one with `renkei users add NAME --config "
                        f"{config} --role operator --municipality CODE`", RUNTIME_ERROR)
    configure_logging(settings.logging.format, settings.logging.level)
    destinations = route_destinations("console", settings)

    async def main() -> int:
        app = Console(settings, options, serve=EmbeddedServer, destinations=lambda: destinations)
        try:
            await app.start()
        except OSError as exc:
            click.echo(f"renkei console: error: cannot listen on {options.host}:{options.port} "
                       f"({exc.strerror or exc}): give another --port", err=True)
            return CONFIG_ERROR
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        click.echo(f"renkei console: listening on {app.url}/ (SIGINT or SIGTERM stops it)")
        await stop.wait()
        await app.stop()
        return 0

    raise SystemExit(asyncio.run(main()))


async def start_with_bus(settings: Settings, bus: Any = None, *, say: Callable[[str], None] = print,
                         force: bool = False) -> Callable[[], Awaitable[None]] | None:
    """What `renkei run` calls: start the console of `settings` (on the running `bus`'s broker,
    when given) if `[console] enabled` (or `force`); returns its stop, or None when it is off."""
    from bus.console import Console, console_options

    options = console_options(settings)
    if not (options.enabled or force):
        return None
    destinations = (lambda: bus.destinations) if bus is not None else tuple
    app = Console(settings, options, serve=EmbeddedServer, broker=getattr(bus, "broker", None),
                  destinations=destinations)
    try:
        await app.start()
    except OSError as exc:
        raise ConfigError(f"[console] cannot listen on {options.host}:{options.port} ({exc.strerror or exc}): "
                          "choose another port", where=str(settings.source_file or "[console]")) from exc
    say(f"console on {app.url}/ (accounts: `renkei users add`; metrics on {app.url}/metrics)")
    return app.stop
