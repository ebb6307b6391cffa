"""The `renkei` command. Subcommands live one per module and load only when invoked."""

from __future__ import annotations

import importlib
from typing import Any

import click

__all__ = ["main"]

#: command name → "module:attribute" of its click command
COMMANDS: dict[str, str] = {
    "validate": "bus.cli.validate:validate",
    "sample": "bus.cli.sample:sample",
    "routes": "bus.cli.routes:routes",
    "simulate": "bus.cli.simulate:simulate",
    "run": "bus.cli.run:run",
    "demo": "bus.cli.demo:demo",
    "status": "bus.cli.status:status",
    "dead": "bus.cli.dead:dead",
    "retry": "bus.cli.retry:retry",
    "queues": "bus.cli.queues:queues",
    "audit": "bus.cli.audit:audit",
    "schemas": "bus.cli.schemas:schemas",
    "console": "bus.cli.console:console",
    "users": "bus.cli.users:users",
    "conformance": "bus.cli.conformance:conformance",
    "ingest": "bus.cli.ingest:ingest",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: Any = getattr(importlib.import_module(module), attr)
        return command  # type: ignore[no-any-return]


@click.group(cls=_LazyGroup)
@click.version_option(package_name="renkei")
def main() -> None:
    """renkei (連携): the data-linkage bus of a regional information platform."""
