"""`renkei retry now`: changes waiting in a retry tier are made due now, once a destination is back.

    renkei retry now --config renkei.toml                      # every destination
    renkei retry now --config renkei.toml --destination zei    # one (repeatable)
    renkei retry now --config renkei.toml --json               # {"made_due": {"zei": 5, ...}}

A change whose delivery failed waits in the broker for its next tier (10 s, 1 min, 10 min,
1 h, … `[retry] tiers`); after a destination's outage the last ones may wait an hour. This
makes each waiting change of the chosen destinations due now (Broker.expedite): the running
bus delivers it at once, in each resident's order (the deliver stage still holds the
resident's later changes behind it). A change that fails again goes on to its next tier, as
before. Dead letters are not touched (`renkei dead replay` is for them).

Each change made due is recorded in the audit trail (`retried`, with `--operator`, default
the login name). Exit status 0 (also when nothing was waiting), 1 when the broker cannot be
reached, 2 on a usage or config error.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path

import click

from bus.cli.config import RUNTIME_ERROR, fail, load_settings, route_destinations
from bus.errors import BrokerError, ConfigError
from bus.settings import Settings
from bus.topology import destination_queue

__all__ = ["retry"]

#: the audit trail's reason for a change an operator made due
REASON = "made due now by `renkei retry now`"


@click.group("retry")
def retry() -> None:
    """Changes waiting to retry a delivery: make them due now."""


@retry.command("now")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path),
              help="renkei.toml of the bus (default: RENKEI_* environment and defaults).")
@click.option("--destination", "destinations", multiple=True, metavar="D",
              help="Only this destination (repeatable); default: every destination.")
@click.option("--operator", default=None, metavar="NAME",
              help="Who does this (recorded in the audit trail); default: the login name.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: changes made due, per destination.")
def now(config: Path | None, destinations: tuple[str, ...], operator: str | None, as_json: bool) -> None:
    """Make the changes waiting in a retry tier due now (audited).

    Exit status: 0 done (also when nothing was waiting), 1 the broker cannot be reached,
    2 a usage or config error (an unknown --destination)."""
    settings = load_settings("retry now", config)
    known = route_destinations("retry now", settings)
    unknown = sorted(set(destinations) - set(known))
    if unknown:
        fail("retry now", f"--destination {', '.join(unknown)}: no route addresses it (known: {', '.join(known)})")
    chosen = list(destinations) or known
    try:
        moved = asyncio.run(_expedite(settings, chosen, operator or getpass.getuser()))
    except ConfigError as exc:
        fail("retry now", str(exc))
    except BrokerError as exc:
        fail("retry now", f"the broker: {exc}", RUNTIME_ERROR)
    if as_json:
        click.echo(json.dumps({"made_due": {name: moved.get(name, 0) for name in chosen}}, indent=2))
        return
    for name in chosen:
        count = moved.get(name, 0)
        click.echo(f"{name}: {count} change{'' if count == 1 else 's'} made due now")


async def _expedite(settings: Settings, destinations: list[str], operator: str) -> dict[str, int]:
    from bus.audit.events import AuditEvent, EventType
    from bus.audit.log import AuditLog
    from bus.brokers import broker_for
    from bus.envelope import Envelope
    from bus.stages.deliver import TIER_HEADER

    broker = broker_for(settings)
    await broker.connect()
    audit = AuditLog.open(settings)
    moved: dict[str, int] = {}
    try:
        for name in destinations:
            headers = await broker.expedite(destination_queue(name), settings.retry_of(name).tiers)
            events = []
            for h in headers:
                try:
                    envelope = Envelope.from_headers(h)
                except ConfigError:  # not a renkei message: nothing to record it under
                    continue
                tier = h.get(TIER_HEADER)
                events.append(AuditEvent.of(EventType.RETRIED, envelope, actor=operator, reason=REASON,
                                            attempt=tier if isinstance(tier, int) else None))
            audit.append(events)
            moved[name] = len(headers)
    finally:
        audit.close()
        await broker.close()
    return moved
