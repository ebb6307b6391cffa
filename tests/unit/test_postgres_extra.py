"""psycopg is the `postgres` extra, not a runtime dependency: a bus configured with a PostgreSQL
audit store where it is not installed is refused with one line saying what to install —
by `renkei run` and `renkei audit` alike, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: runs the CLI as if psycopg were not installed (an import of it fails as a missing one does)
WITHOUT_PSYCOPG = "import sys; sys.modules['psycopg'] = None; from bus.cli import main; main()"


def test_psycopg_is_an_extra_and_the_dev_extra_has_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not any(d.startswith("psycopg") for d in project["dependencies"])
    assert any(d.startswith("psycopg") for d in project["optional-dependencies"]["postgres"])
    assert any(d.startswith("psycopg") for d in project["optional-dependencies"]["dev"])
    assert '".[postgres]"' in (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", [["run"], ["audit", "verify"]])
def test_a_postgresql_store_without_psycopg_is_refused_with_what_to_install(
    tmp_path: Path, command: list[str]
) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n[intake]\nhttp_port = 0\n'
                      '[audit]\nstore = "postgresql://renkei@127.0.0.1:9/renkei"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", WITHOUT_PSYCOPG, *command, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert "psycopg is not installed" in done.stderr and "renkei[postgres]" in done.stderr
    assert "Traceback" not in done.stderr
