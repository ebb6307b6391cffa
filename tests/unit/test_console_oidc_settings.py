"""`[console.oidc]` is read with clear errors: the client secret only from the environment, an
unknown key named, and the [console] table still refusing its own unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.console import console_options
from bus.console.oidc import oidc_options
from bus.errors import ConfigError
from bus.settings import Settings


def _settings(tmp_path: Path, oidc: str) -> Settings:
    path = tmp_path / "renkei.toml"
    path.write_text(f'[console]\nport = 0\n\n[console.oidc]\n{oidc}', encoding="utf-8")
    return Settings.load(path, env={})


def test_the_client_secret_comes_from_the_environment_variable_it_names(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 'issuer = "https://idp.example/"\nclient_id = "c"\n'
                                   'client_secret_env = "MY_SECRET"\n')
    with pytest.raises(ConfigError, match="environment variable MY_SECRET"):
        oidc_options(settings, env={})
    options = oidc_options(settings, env={"MY_SECRET": "s3"})
    assert options is not None and options.client_secret == "s3" and options.issuer == "https://idp.example"
    assert console_options(settings, env={}).port == 0  # the sub-table is not a [console] key


def test_an_unknown_or_missing_oidc_setting_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown \[console.oidc\] setting\(s\) client_secret"):
        oidc_options(_settings(tmp_path, 'issuer = "x"\nclient_id = "c"\nclient_secret = "in the file"\n'), env={})
    with pytest.raises(ConfigError, match="client_id is required"):
        oidc_options(_settings(tmp_path, 'issuer = "x"\n'), env={})


def test_without_the_table_there_is_no_oidc_login(tmp_path: Path) -> None:
    path = tmp_path / "renkei.toml"
    path.write_text("[console]\nport = 0\n", encoding="utf-8")
    assert oidc_options(Settings.load(path, env={}), env={}) is None
