"""A bus whose `[state] store` is PostgreSQL where psycopg is not installed is refused with one
line saying what to install — by `renkei run`, `renkei status` and `renkei dead` alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WITHOUT_PSYCOPG = "import sys; sys.modules['psycopg'] = None; from bus.cli import main; main()"


@pytest.mark.parametrize("command", [["run"], ["status"], ["dead", "list"]])
def test_a_postgresql_state_store_without_psycopg_is_refused_with_what_to_install(
        tmp_path: Path, command: list[str]) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n[intake]\nhttp_port = 0\n'
                      '[state]\nstore = "postgresql://renkei:hunter2@127.0.0.1:9/renkei"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", WITHOUT_PSYCOPG, *command, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "psycopg is not installed" in done.stderr and "renkei[postgres]" in done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr + done.stdout
