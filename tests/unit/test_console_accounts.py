"""The console's accounts: argon2 hashes in a 0600 file, roles and municipality scopes, clear errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from bus.cli import main
from bus.console.accounts import Account, Accounts
from bus.errors import ConfigError


def test_an_account_logs_in_with_its_password_only_and_the_file_holds_an_argon2_hash(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "users.json")
    accounts.add("sato", "a long passphrase", role="operator", municipalities=["131016"])
    text = (tmp_path / "users.json").read_text(encoding="utf-8")
    assert "a long passphrase" not in text and "$argon2id$" in text
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600
    assert accounts.check("sato", "a long passphrase") == Account("sato", "operator", ("131016",))
    assert accounts.check("sato", "a long passphrasE") is None
    assert accounts.check("nobody", "a long passphrase") is None


def test_passwd_changes_the_password_and_remove_ends_the_account(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "users.json")
    accounts.add("sato", "first passphrase", role="viewer", municipalities=["*"])
    accounts.passwd("sato", "second passphrase")
    assert accounts.check("sato", "first passphrase") is None
    assert accounts.check("sato", "second passphrase") is not None
    accounts.remove("sato")
    assert accounts.get("sato") is None
    with pytest.raises(ConfigError, match="no account 'sato'"):
        accounts.remove("sato")


@pytest.mark.parametrize(("name", "password", "role", "municipalities", "message"), [
    ("Sato", "long enough pass", "viewer", ["131016"], "lowercase letters"),
    ("123", "long enough pass", "viewer", ["131016"], "starting with a letter"),
    ("sato", "short", "viewer", ["131016"], "at least 10 characters"),
    ("sato", "long enough pass", "admin", ["131016"], "role must be one of"),
    ("sato", "long enough pass", "viewer", ["13101"], "6-digit"),
    ("sato", "long enough pass", "viewer", [], "at least one --municipality"),
])
def test_a_bad_account_is_refused_saying_what_is_wrong(tmp_path: Path, name: str, password: str, role: str,
                                                       municipalities: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Accounts(tmp_path / "users.json").add(name, password, role=role, municipalities=municipalities)
    assert not (tmp_path / "users.json").exists()


def test_roles_decide_the_actions_and_scopes_decide_what_is_seen() -> None:
    operator = Account("op", "operator", ("131016",))
    viewer = Account("v", "viewer", ("131016", "271004"))
    auditor = Account("au", "auditor", ("*",))
    assert operator.may("replay") and operator.may("discard") and operator.may("unmask")
    assert not viewer.may("replay") and not viewer.may("unmask") and not viewer.may("export")
    assert auditor.may("export") and auditor.may("unmask") and not auditor.may("replay")
    assert operator.sees(frozenset({"131016"})) and not operator.sees(frozenset({"271004"}))
    assert not operator.sees(None)  # a destination of every municipality mixes others' figures in
    assert auditor.sees(None) and auditor.scope is None


def test_renkei_users_adds_lists_and_removes_accounts_with_the_password_from_stdin(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n\n[console]\nusers_file = "users.json"\n', encoding="utf-8")
    runner = CliRunner()
    added = runner.invoke(main, ["users", "add", "sato", "--role", "auditor", "--municipality", "131016",
                                 "--config", str(config), "--password-stdin"], input="a long passphrase\n")
    assert added.exit_code == 0, added.output
    data = json.loads((tmp_path / "users.json").read_text(encoding="utf-8"))
    assert data["users"]["sato"]["role"] == "auditor"
    listed = runner.invoke(main, ["users", "list", "--config", str(config)])
    assert listed.output.strip() == "sato\tauditor\t131016"
    again = runner.invoke(main, ["users", "add", "sato", "--role", "viewer", "--municipality", "131016",
                                 "--config", str(config), "--password-stdin"], input="a long passphrase\n")
    assert again.exit_code == 2 and "exists" in again.output
    removed = runner.invoke(main, ["users", "remove", "sato", "--config", str(config)])
    assert removed.exit_code == 0 and Accounts(tmp_path / "users.json").names() == []
