"""`renkei dead`: the dead letters, as operations staff work them, on either broker.

    renkei dead list [--destination D] [--municipality M] [--code C] [--since T] [--json]
    renkei dead show ID [--unmasked] [--json]
    renkei dead replay ID
    renkei dead replay --all-matching [--destination D] [--municipality M] [--code C] [--since T]
    renkei dead discard ID --reason TEXT
    renkei dead discard --all-matching [FILTERS] --reason TEXT

Replaying or discarding many shows a progress bar (rate, ETA) on a terminal, plain lines
otherwise.

Every command takes `--config renkei.toml` (default: RENKEI_* environment and defaults) and
`--operator NAME` (default: the login name), which the audit trail records with each
replay, discard and unmasked view. `--since` takes an ISO date or time (2026-12-01,
2026-12-01T09:00) or an age (30m, 2h, 1d). Personal data is masked unless `--unmasked`.
Codes: D100 refused by the destination, D200 deadline passed while failing, D300 poison
(crashed the handler repeatedly). Exit status 0, 1 when nothing matched or the broker is
unreachable, 2 on a usage or config error.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from bus.brokers import broker_for
from bus.catalog import Catalog
from bus.cli.config import CONFIG_ERROR, RUNTIME_ERROR, fail, load_settings
from bus.cli.progress import progress
from bus.cli.tables import columns
from bus.delivery.dead import DeadLetters
from bus.delivery.store import DeadFilter, DeadLetter
from bus.errors import BrokerError, ConfigError, DeadLetterNotFound, RenkeiError, StateStoreError
from bus.logs import scrub
from bus.settings import Settings
from bus.store_protocols import DeliveryStoreProtocol

__all__ = ["dead"]

T = TypeVar("T")
_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

config_option = click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path),
                             help="renkei.toml of the bus (default: RENKEI_* environment and defaults).")
operator_option = click.option("--operator", default=None, metavar="NAME",
                               help="Who does this (recorded in the audit trail); default: the login name.")


def _filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed((
        click.option("--destination", metavar="D", help="Only this destination (zei, kokuho, ...)."),
        click.option("--municipality", metavar="M", help="Only this 地方公共団体コード."),
        click.option("--code", metavar="C", help="Only this code (D100, D200, D300)."),
        click.option("--since", metavar="T", help="Dead since T: 2026-12-01, 2026-12-01T09:00, 30m, 2h, 1d."),
    )):
        fn = option(fn)
    return fn


@click.group("dead")
def dead() -> None:
    """The dead letters: list, show (masked), replay, discard."""


@dead.command("list")
@config_option
@_filters
@click.option("--all", "every_state", is_flag=True, help="Also the replayed and discarded ones.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(config: Path | None, destination: str | None, municipality: str | None, code: str | None,
          since: str | None, every_state: bool, as_json: bool) -> None:
    """List dead letters, oldest first.

    Exit status: 0 letters listed, 1 none match (or no delivery store), 2 a usage or configuration error."""
    where = _where(destination, municipality, code, since, every_state)
    with _stores(load_settings("dead", config)) as store:
        letters = store.dead_list(where)
    if as_json:
        click.echo(json.dumps([_summary(d) for d in letters], ensure_ascii=False, indent=2))
    else:
        rows: list[list[object]] = [[d.id, _when(d.dead_at), d.destination, d.municipality, d.code, d.attempts,
                                     d.state, d.message_id, scrub(d.reason)[:60]] for d in letters]
        header = ["ID", "DEAD AT", "DESTINATION", "MUNICIPALITY", "CODE", "ATTEMPTS", "STATE", "MESSAGE", "REASON"]
        click.echo("\n".join(columns(header, rows, empty="no dead letters match", text=9)))
    if not letters:
        raise SystemExit(RUNTIME_ERROR)


@dead.command("show")
@config_option
@operator_option
@click.argument("dead_id", type=int, metavar="ID")
@click.option("--unmasked", is_flag=True, help="Show personal data in plain text (the view is audited).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(config: Path | None, operator: str | None, dead_id: int, unmasked: bool, as_json: bool) -> None:
    """Show one dead letter and its message (personal data masked).

    Exit status: 0 shown, 1 no such letter or the broker cannot be reached, 2 a usage or
    configuration error."""
    settings = load_settings("dead", config)
    with _stores(settings) as store:
        letters = DeadLetters(store, broker_for(settings), Catalog.load(), _events(settings))
        shown = _or_fail(lambda: letters.show(dead_id, unmasked_by=_who(operator) if unmasked else None))
    document = {**_summary(shown.letter), "masked": shown.masked, "message": shown.record}
    if as_json:
        click.echo(json.dumps(document, ensure_ascii=False, indent=2, default=str))
        return
    for key, value in document.items():
        if key != "message":
            click.echo(f"{key:>16}: {value if value is not None else '-'}")
    click.echo(f"{'message':>16}:" + (" (masked: --unmasked shows it, and is audited)" if shown.masked else ""))
    click.echo(json.dumps(shown.record, ensure_ascii=False, indent=2, default=str))


@dead.command("replay")
@config_option
@operator_option
@click.argument("dead_id", type=int, metavar="ID", required=False)
@click.option("--all-matching", is_flag=True, help="Replay every dead letter the filters match.")
@_filters
def replay(config: Path | None, operator: str | None, dead_id: int | None, all_matching: bool,
           destination: str | None, municipality: str | None, code: str | None, since: str | None) -> None:
    """Deliver a dead letter again (ID, or --all-matching FILTERS), keeping each resident's order.

    Exit status: 0 replayed, 1 none match, already resolved or the broker cannot be reached,
    2 a usage or configuration error."""
    _one_or_all(dead_id, all_matching, destination, municipality, code, since)
    settings = load_settings("dead", config)
    who = _who(operator)
    with _stores(settings) as store:
        targets = _targets(store, dead_id, destination, municipality, code, since)

        async def run(letters: DeadLetters) -> None:
            if len(targets) == 1:
                letter = await letters.replay(targets[0], by=who)
                click.echo(f"replayed {letter.id}: {letter.message_id} to {letter.destination}")
                return
            with progress("replaying", total=len(targets)) as advance:  # a bar on a terminal (bus.cli.progress)
                for target in targets:
                    await letters.replay(target, by=who)
                    advance(1)
            click.echo(f"replayed {len(targets)} dead letters")

        _with_broker(settings, store, run)


@dead.command("discard")
@config_option
@operator_option
@click.argument("dead_id", type=int, metavar="ID", required=False)
@click.option("--reason", required=True, metavar="TEXT", help="Why (recorded in the audit trail).")
@click.option("--all-matching", is_flag=True, help="Discard every dead letter the filters match.")
@_filters
def discard(config: Path | None, operator: str | None, dead_id: int | None, reason: str, all_matching: bool,
            destination: str | None, municipality: str | None, code: str | None, since: str | None) -> None:
    """Resolve a dead letter (ID, or --all-matching FILTERS) without delivering it; the
    resident's later changes then flow.

    Exit status: 0 discarded, 1 none match, no such letter (or already resolved) or the broker
    cannot be reached, 2 a usage or configuration error (an empty --reason).
    """
    _one_or_all(dead_id, all_matching, destination, municipality, code, since)
    settings = load_settings("dead", config)
    who = _who(operator)
    with _stores(settings) as store:
        targets = _targets(store, dead_id, destination, municipality, code, since)

        async def run(letters: DeadLetters) -> None:
            if len(targets) == 1:
                letter = await letters.discard(targets[0], by=who, reason=reason)
                click.echo(f"discarded {letter.id}: {letter.message_id} ({letter.destination}), by {who}")
                return
            with progress("discarding", total=len(targets)) as advance:
                for target in targets:
                    await letters.discard(target, by=who, reason=reason)
                    advance(1)
            click.echo(f"discarded {len(targets)} dead letters, by {who}")

        _with_broker(settings, store, run)


def _one_or_all(dead_id: int | None, all_matching: bool, *filters: str | None) -> None:
    if (dead_id is None) == (not all_matching):
        raise click.UsageError("give an ID or --all-matching (with filters), not both")
    if dead_id is not None and any(filters):
        raise click.UsageError("filters go with --all-matching, not with an ID")


def _targets(store: DeliveryStoreProtocol, dead_id: int | None, destination: str | None, municipality: str | None,
             code: str | None, since: str | None) -> list[int]:
    targets = [dead_id] if dead_id is not None else [
        d.id for d in store.dead_list(_where(destination, municipality, code, since, False))]
    if not targets:
        click.echo("no dead letters match", err=True)
        raise SystemExit(RUNTIME_ERROR)
    return targets


# -- helpers ------------------------------------------------------------------------------


@contextmanager
def _stores(settings: Settings) -> Iterator[DeliveryStoreProtocol]:
    state_dir = settings.state_files  # a shared store: the dead letters of the whole bus
    if not state_dir.shared and not state_dir.delivery_file.exists():
        fail("dead", f"no delivery store at {state_dir.delivery_file}: has a bus run with this state_dir?",
             RUNTIME_ERROR)
    try:
        store = state_dir.open_delivery()
    except ConfigError as exc:  # psycopg missing for a shared store
        fail("dead", str(exc), CONFIG_ERROR)
    except StateStoreError as exc:  # the shared store cannot be reached
        fail("dead", str(exc), RUNTIME_ERROR)
    try:
        yield store
    finally:
        store.close()


def _with_broker(settings: Settings, store: DeliveryStoreProtocol,
                 run: Callable[[DeadLetters], Awaitable[None]]) -> None:
    async def main() -> None:
        broker = broker_for(settings)
        await broker.connect()
        try:
            await run(DeadLetters(store, broker, Catalog.load(), _events(settings)))
        finally:
            await broker.close()

    _or_fail(lambda: asyncio.run(main()))


def _or_fail(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except DeadLetterNotFound as exc:
        fail("dead", str(exc), RUNTIME_ERROR)
    except BrokerError as exc:
        fail("dead", f"the broker: {exc}", RUNTIME_ERROR)
    except RenkeiError as exc:
        fail("dead", str(exc))


def _events(settings: Settings) -> Any:
    from bus.audit.hooks import AuditOperatorEvents

    return AuditOperatorEvents.open(settings)


def _where(destination: str | None, municipality: str | None, code: str | None, since: str | None,
           every_state: bool) -> DeadFilter:
    return DeadFilter(destination=destination, municipality=municipality, code=code,
                      since=_since(since) if since else None, state=None if every_state else "dead")


def _since(text: str) -> float:
    age = _AGE.match(text.strip())
    if age:
        return time.time() - float(age.group(1)) * _SECONDS[age.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: give an ISO date or time (2026-12-01T09:00) or an age (30m, 2h, 1d)",
                                 param_hint="--since") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _who(operator: str | None) -> str:
    return operator or getpass.getuser()


def _when(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _summary(letter: DeadLetter) -> dict[str, Any]:
    data = asdict(letter)
    del data["body"], data["headers"]
    data["reason"] = scrub(letter.reason)
    data["resolved_reason"] = scrub(letter.resolved_reason) if letter.resolved_reason else None
    for key in ("first_failed", "dead_at", "resolved_at"):
        data[key] = _when(data[key])
    data["kind"] = letter.headers.get("kind")
    data["route"] = letter.headers.get("route")
    return data
