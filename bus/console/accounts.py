"""The console's accounts: who may log in, with which role, for which municipalities.

    accounts = Accounts(Path("var/console-users.json"))
    accounts.add("sato", "a long passphrase", role="operator", municipalities=["131016"])
    account = accounts.check("sato", "a long passphrase")      # None when wrong

Roles (each scoped to one or more 地方公共団体コード, or "*" for every municipality):

- viewer   — the overview, the dead letters (masked), a message's life, the audit status;
- operator — a viewer who also replays and discards dead letters and may unmask a message
             (each audited with the operator's name);
- auditor  — a viewer who also exports the audit trail of its municipalities and may
             unmask a message (audited).

Passwords are hashed with argon2id (argon2-cffi, the OWASP-recommended password hash); the
file holds only the hashes, is written atomically and readable by its owner only (0600).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bus.errors import ConfigError

__all__ = ["ALL", "ROLES", "Account", "Accounts"]

ROLES = ("viewer", "operator", "auditor")
ALL = "*"
_NAME = re.compile(r"[a-z][a-z0-9._-]{0,63}")
MIN_PASSWORD = 10
_hasher = PasswordHasher()
#: a hash checked when the account does not exist, so a wrong name takes as long as a wrong password
_DUMMY = _hasher.hash("renkei-console-no-such-account")


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    role: str
    municipalities: tuple[str, ...]  # ("*",): every municipality

    @property
    def scope(self) -> frozenset[str] | None:
        """The municipalities this account sees; None: every one."""
        return None if ALL in self.municipalities else frozenset(self.municipalities)

    def may(self, action: str) -> bool:
        """replay / discard: operators; unmask: operators and auditors; export: auditors."""
        allowed = {"replay": ("operator",), "discard": ("operator",), "unmask": ("operator", "auditor"),
                   "export": ("auditor",), "demo": ("operator",)}
        return self.role in allowed.get(action, ())

    def sees(self, municipalities: frozenset[str] | None) -> bool:
        """Whether something of `municipalities` (None: of any, a bus of one) is this account's."""
        if self.scope is None:
            return True
        if municipalities is None:
            return False  # a destination of every municipality mixes others' figures in
        return bool(municipalities) and municipalities <= self.scope


class Accounts:
    """The users file (JSON); read at every check, so `renkei users` changes apply at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the console's users file: {exc}", where=str(self.path)) from None
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, dict):
            raise ConfigError("not a users file (no \"users\" object); `renkei users add` writes one",
                              where=str(self.path))
        return users

    def _write(self, users: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"users": users}, out, ensure_ascii=False, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    def names(self) -> list[Account]:
        return [self._account(name, entry) for name, entry in sorted(self._read().items())]

    def get(self, name: str) -> Account | None:
        entry = self._read().get(name)
        return None if entry is None else self._account(name, entry)

    def add(self, name: str, password: str, *, role: str, municipalities: list[str]) -> Account:
        users = self._read()
        if name in users:
            raise ConfigError(f"account {name!r} exists; `renkei users passwd` changes its password",
                              where=str(self.path))
        _check_name(name)
        _check_password(password)
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}", where="--role")
        scope = _check_municipalities(municipalities)
        users[name] = {"hash": _hasher.hash(password), "role": role, "municipalities": scope}
        self._write(users)
        return self._account(name, users[name])

    def passwd(self, name: str, password: str) -> None:
        users = self._read()
        if name not in users:
            raise ConfigError(f"no account {name!r}", where=str(self.path))
        _check_password(password)
        users[name]["hash"] = _hasher.hash(password)
        self._write(users)

    def remove(self, name: str) -> None:
        users = self._read()
        if users.pop(name, None) is None:
            raise ConfigError(f"no account {name!r}", where=str(self.path))
        self._write(users)

    def check(self, name: str, password: str) -> Account | None:
        """The account when `password` is right; None otherwise (same work either way)."""
        entry = self._read().get(name)
        try:
            _hasher.verify(entry["hash"] if entry else _DUMMY, password)
        except (VerificationError, InvalidHashError):
            return None
        return None if entry is None else self._account(name, entry)

    @staticmethod
    def _account(name: str, entry: dict[str, Any]) -> Account:
        return Account(name, str(entry.get("role", "viewer")), tuple(entry.get("municipalities", ())))


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ConfigError(f"account name {name!r}: lowercase letters, digits, '.', '_' or '-', starting with a "
                          "letter (it is recorded in the audit trail)", where="NAME")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"the password must have at least {MIN_PASSWORD} characters", where="password")


def _check_municipalities(values: list[str]) -> list[str]:
    if not values:
        raise ConfigError("give at least one --municipality CODE (or '*' for every municipality)",
                          where="--municipality")
    for value in values:
        if value != ALL and not (len(value) == 6 and value.isascii() and value.isdigit()):
            raise ConfigError(f"{value!r} is not a 6-digit 地方公共団体コード (or '*')", where="--municipality")
    return sorted(set(values))
