"""`renkei queues`: the bus's RabbitMQ queues against the arguments this renkei declares.

    renkei queues check [--config renkei.toml] [--json] [QUEUE...]   which queues differ (exit 1 if any)
    renkei queues migrate [--config renkei.toml] [QUEUE...]    rebuild those, keeping every message

Without QUEUE: the intake queue and every destination's queue (each shard, with `[bus]
shards`). Wait queues (`<queue>.wait`, plain queues) and the delay queues of before December
2026 (`<queue>.delay.<ms>ms`) are made as retries need them, so name the ones `rabbitmqctl
list_queues` shows. Stop the bus first: a queue with consumers is refused.
How a migration keeps messages and order: bus/brokers/amqp/migration.py. The embedded broker
has no queue arguments: nothing to do. Exit status: 0 all in order (or migrated), 1 a queue
differs (check) or could not be migrated, 2 usage or configuration error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bus.cli.config import RUNTIME_ERROR, fail, load_settings, route_destinations
from bus.topology import INTAKE_QUEUE, destination_queue

if TYPE_CHECKING:
    from bus.brokers.amqp import AmqpBroker
    from bus.brokers.amqp.migration import QueueState
    from bus.settings import Settings

__all__ = ["bus_queues", "queues"]

_config = click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                       help="renkei.toml of the bus (default: RENKEI_* environment and defaults).")
_names = click.argument("names", nargs=-1, metavar="[QUEUE]...")


@click.group("queues")
def queues() -> None:
    """The bus's RabbitMQ queues: check their arguments, migrate those an earlier renkei made."""


@queues.command("check")
@_config
@_names
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: each queue's status.")
def check(config: Path | None, names: tuple[str, ...], as_json: bool) -> None:
    """Say, per queue, whether it has the arguments this renkei declares (declares nothing).

    Exit status: 0 every queue in order (or the embedded broker), 1 a queue differs or the
    broker cannot be reached, 2 a usage or configuration error."""
    from bus.brokers.amqp.migration import inspect_queue

    states = _run("check", config, names, inspect_queue, quiet=as_json)
    differ = [s for s in states if s.needs_migration]
    if as_json:
        click.echo(json.dumps({
            "ok": not differ,
            "queues": [{"name": s.name, "status": s.status, "messages": s.messages, "consumers": s.consumers,
                        "detail": s.detail or None, "needs_migration": s.needs_migration} for s in states],
        }, ensure_ascii=False, indent=2))
        if differ:
            raise SystemExit(1)
        return
    if differ:
        click.echo(f"{len(differ)} queue{'s' if len(differ) > 1 else ''} to migrate: stop the bus, then "
                   "`renkei queues migrate`")
        raise SystemExit(1)


@queues.command("migrate")
@_config
@_names
def migrate(config: Path | None, names: tuple[str, ...]) -> None:
    """Rebuild every queue whose arguments differ, moving its messages out and back in order.

    Exit status: 0 every queue in order or migrated, 1 a queue is busy or could not be
    migrated (or the broker cannot be reached), 2 a usage or configuration error."""
    from bus.brokers.amqp.migration import inspect_queue, migrate_queue
    from bus.cli.progress import progress

    async def one(broker: AmqpBroker, name: str) -> QueueState:
        def say(text: str) -> None:
            click.echo(f"  {text}")

        state = await inspect_queue(broker, name)
        if not state.needs_migration or state.consumers:
            return await migrate_queue(broker, name, progress=say)  # nothing to move, or busy
        with progress(f"  {name}: moving", total=2 * state.messages) as advance:  # out and back: a bar
            return await migrate_queue(broker, name, progress=say, moved=advance)

    states = _run("migrate", config, names, one)
    if any(s.status == "busy" for s in states):
        raise SystemExit(1)


def _run(command: str, config: Path | None, names: tuple[str, ...],
         action: Callable[[AmqpBroker, str], Awaitable[QueueState]], *, quiet: bool = False) -> list[QueueState]:
    from bus.brokers import broker_for
    from bus.brokers.amqp import AmqpBroker
    from bus.errors import BrokerError, ConfigError

    settings = load_settings(f"queues {command}", config)
    try:
        broker = broker_for(settings)
    except ConfigError as exc:
        fail(f"queues {command}", str(exc))
    if not isinstance(broker, AmqpBroker):
        if not quiet:
            click.echo("the embedded broker has no queue arguments: nothing to check or migrate")
        return []

    async def go() -> list[QueueState]:
        await broker.connect()
        try:
            states = []
            for name in names or bus_queues(command, settings, broker):
                state = await action(broker, name)
                if not quiet:
                    click.echo(_line(state))
                states.append(state)
            return states
        finally:
            await broker.close()

    try:
        return asyncio.run(go())
    except BrokerError as exc:
        fail(f"queues {command}", str(exc), code=RUNTIME_ERROR)


def bus_queues(command: str, settings: Settings, broker: AmqpBroker) -> list[str]:
    logical = [INTAKE_QUEUE, *map(destination_queue, route_destinations(f"queues {command}", settings))]
    return [physical for queue in logical for physical in broker.physical_queues(queue)]


def _line(state: QueueState) -> str:
    figures = f" ({state.messages} messages)" if state.status != "missing" else ""
    return f"{state.name}: {state.status}{figures}" + (f": {state.detail}" if state.detail else "")
