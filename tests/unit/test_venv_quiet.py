"""scripts/venv.sh keeps pip's output out of the demo's: one line says it installs, pip's own
lines (progress, setuptools' editable-install warning) go to .venv/install.log, shown only when
the install fails."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOISE = "BuildBackendWarning: Editable installation (pip noise)"


def _checkout(tmp_path: Path, pip_exit: int) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "venv.sh", tmp_path / "scripts" / "venv.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    # a stand-in interpreter: new enough, and a pip that talks a lot and exits with `pip_exit`
    python.write_text(f'#!/usr/bin/env bash\nif [[ "$1" == "-m" ]]; then echo "{NOISE}"; echo "{NOISE}" >&2; '
                      f'[[ "$*" == *"-e"* ]] && exit {pip_exit}; fi\nexit 0\n', encoding="utf-8")
    python.chmod(0o755)
    return tmp_path


def _source(checkout: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", 'source scripts/venv.sh ""'], cwd=checkout, capture_output=True,
                          text=True, timeout=60, check=False)


def test_a_first_install_says_one_line_and_logs_pips_output(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path, pip_exit=0)
    done = _source(checkout)
    assert done.returncode == 0, done.stderr
    assert NOISE not in done.stdout + done.stderr
    assert done.stderr.splitlines() == ["== installing renkei (.) into .venv (a minute or two, once; "
                                        "pip's output: .venv/install.log)"]
    assert NOISE in (checkout / ".venv" / "install.log").read_text(encoding="utf-8")
    assert _source(checkout).stderr == ""  # installed: nothing at all the next time


def test_a_failed_install_shows_pips_output(tmp_path: Path) -> None:
    done = _source(_checkout(tmp_path, pip_exit=1))
    assert done.returncode != 0
    assert NOISE in done.stderr and "pip install -e '.' failed" in done.stderr
