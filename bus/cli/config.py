"""What the commands that read `renkei.toml` share: loading it, and failing cleanly.

A user's mistake ends the command with one line on stderr — what is wrong and where — and
exit status 2 (1 for a runtime failure such as an unreachable broker); never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click

from adapters.registry import sink_options
from bus.catalog import Catalog
from bus.config_check import check_destinations, check_pins
from bus.errors import ConfigError
from bus.paths import routes_dir
from bus.routing.router import RouteTable
from bus.settings import Settings

__all__ = ["CONFIG_ERROR", "RUNTIME_ERROR", "fail", "load_settings", "route_destinations"]

CONFIG_ERROR = 2
RUNTIME_ERROR = 1


def fail(command: str, message: str, code: int = CONFIG_ERROR) -> NoReturn:
    click.echo(f"renkei {command}: error: {message}", err=True)
    raise SystemExit(code)


def load_settings(command: str, config: Path | None) -> Settings:
    """The settings of `config` (plus RENKEI_* overrides), or exit 2 saying what is wrong."""
    try:
        return Settings.load(config)
    except ConfigError as exc:
        fail(command, str(exc))


def route_destinations(command: str, settings: Settings, catalog: Catalog | None = None) -> list[str]:
    """Every destination the routes of `settings` address (with tenants: each system's configured
    per-municipality destinations, bus.tenancy.Tenancy), or exit 2 on a broken route file."""
    from bus.tenancy import Tenancy

    try:
        table = RouteTable.load(settings.bus.routes_dir or routes_dir(), catalog or Catalog.load())
    except ConfigError as exc:
        fail(command, str(exc))
    try:  # as `renkei run` checks them (Bus): a misspelt destination or option is named here too
        check_destinations(settings, (route.destination for route in table.routes), sink_options)
        check_pins(settings, table.routes, table.catalog.versions)
    except ConfigError as exc:
        fail(command, str(exc))
    tenancy = Tenancy(settings.destinations, strict=settings.multi_tenant)
    return tenancy.addressable(route.destination for route in table.routes)
