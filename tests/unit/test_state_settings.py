"""`[state] store`: SQLite in the state directory unless a PostgreSQL URL is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.errors import ConfigError
from bus.settings import Settings


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "renkei.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_without_a_state_section_the_state_stays_in_the_state_directory(tmp_path: Path) -> None:
    settings = Settings.load(_config(tmp_path, '[bus]\nstate_dir = "var"\n'), env={})
    assert settings.state.store is None
    assert not settings.state_files.shared
    assert settings.state_files.path == tmp_path / "var"


def test_a_postgresql_url_makes_the_state_shared(tmp_path: Path) -> None:
    url = "postgresql://renkei:secret@db:5432/renkei?schema=county"
    settings = Settings.load(_config(tmp_path, f'[state]\nstore = "{url}"\n'), env={})
    assert settings.state.store == url
    assert settings.state_files.shared
    assert settings.state_files.state_location == "postgresql://db:5432/renkei (schema county)"  # no password


def test_the_environment_names_the_shared_store_too(tmp_path: Path) -> None:
    settings = Settings.load(None, env={"RENKEI_STATE_STORE": "postgres://db/renkei"})
    assert settings.state.store == "postgres://db/renkei"


def test_a_state_store_that_is_no_postgresql_url_is_refused_with_its_line_and_without_the_url(
        tmp_path: Path) -> None:
    path = _config(tmp_path, '[bus]\nstate_dir = "var"\n\n[state]\nstore = "mysql://u:hunter2@db/renkei"\n')
    with pytest.raises(ConfigError) as error:
        Settings.load(path, env={})
    assert "mysql://" in str(error.value) and "hunter2" not in str(error.value)
    assert "renkei.toml:5" in str(error.value)


def test_an_unknown_key_in_the_state_section_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[state\]"):
        Settings.load(_config(tmp_path, '[state]\nstroe = "postgresql://db/renkei"\n'), env={})
