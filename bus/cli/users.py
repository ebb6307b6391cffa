"""`renkei users`: the console's accounts.

    renkei users add NAME --role viewer|operator|auditor --municipality CODE [...] --config renkei.toml
    renkei users passwd NAME --config renkei.toml
    renkei users remove NAME --config renkei.toml
    renkei users list --config renkei.toml

The password is asked twice on the terminal (or read from standard input with
--password-stdin, for scripts); only its argon2id hash is stored, in [console] users_file
(default: console-users.json in the state_dir, mode 0600). `--municipality '*'` gives every
municipality. Exit status 0; 2 on a usage or configuration error (an existing or unknown
name, a short password, a bad code).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bus.cli.config import fail, load_settings
from bus.errors import ConfigError

if TYPE_CHECKING:
    from bus.console import Accounts

__all__ = ["users"]

_config = click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                       help="renkei.toml of the bus (default: RENKEI_* environment and defaults).")
_stdin = click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")


def _accounts(command: str, config: Path | None) -> Accounts:
    from bus.console import Accounts, console_options

    settings = load_settings(f"users {command}", config)
    try:
        options = console_options(settings)
    except ConfigError as exc:
        fail(f"users {command}", str(exc))
    assert options.users_file is not None
    return Accounts(options.users_file)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = click.prompt("password", hide_input=True, confirmation_prompt=True)
    return value


@click.group("users")
def users() -> None:
    """The web console's accounts: add, passwd, remove, list."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator", "auditor"]), required=True,
              help="viewer: sees; operator: also replays, discards, unmasks; auditor: also exports, unmasks.")
@click.option("--municipality", "municipalities", multiple=True, required=True, metavar="CODE",
              help="A 地方公共団体コード this account sees (repeatable); '*' for every one.")
@_config
@_stdin
def add(name: str, role: str, municipalities: tuple[str, ...], config: Path | None, password_stdin: bool) -> None:
    """Add an account.

    Exit status: 0 added, 2 a usage or configuration error (a name taken, a weak password)."""
    accounts = _accounts("add", config)
    try:
        account = accounts.add(name, _password(password_stdin), role=role, municipalities=list(municipalities))
    except ConfigError as exc:
        fail("users add", str(exc))
    click.echo(f"added {account.name} ({account.role}; {', '.join(account.municipalities)}) to {accounts.path}")


@users.command("passwd")
@click.argument("name")
@_config
@_stdin
def passwd(name: str, config: Path | None, password_stdin: bool) -> None:
    """Set an account's password.

    Exit status: 0 set, 2 a usage or configuration error (no such account)."""
    accounts = _accounts("passwd", config)
    try:
        accounts.passwd(name, _password(password_stdin))
    except ConfigError as exc:
        fail("users passwd", str(exc))
    click.echo(f"changed the password of {name}")


@users.command("remove")
@click.argument("name")
@_config
def remove(name: str, config: Path | None) -> None:
    """Remove an account (its sessions end at their next request).

    Exit status: 0 removed, 2 a usage or configuration error (no such account)."""
    accounts = _accounts("remove", config)
    try:
        accounts.remove(name)
    except ConfigError as exc:
        fail("users remove", str(exc))
    click.echo(f"removed {name}")


@users.command("list")
@_config
def list_(config: Path | None) -> None:
    """List the accounts (never their hashes).

    Exit status: 0, 2 a configuration error."""
    for account in _accounts("list", config).names():
        click.echo(f"{account.name}\t{account.role}\t{','.join(account.municipalities)}")
