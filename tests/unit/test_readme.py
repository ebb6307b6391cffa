"""The README's commands are real: every script it names exists, every `renkei` command it
shows parses, and .ci/run runs exactly the README's test command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from bus.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_opens_with_the_demo_and_the_test_command() -> None:
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^exec bash scripts/test\.sh\b", ci, re.MULTILINE)


def test_every_script_the_readme_names_exists() -> None:
    scripts = set(re.findall(r"bash (scripts/[\w.-]+\.sh)", README))
    assert {"scripts/demo.sh", "scripts/test.sh"} <= scripts
    missing = sorted(s for s in scripts if not (ROOT / s).is_file())
    assert missing == []


def test_every_renkei_command_in_the_readme_parses() -> None:
    runner = CliRunner()
    shown = re.findall(r"\.venv/bin/renkei ([^\n#>|]+)", README)
    assert len(shown) >= 8
    for line in shown:
        words = [w for w in shlex.split(line.replace("\\", "")) if w]
        path = [w for w in words if not w.startswith("-")][:2]
        result = runner.invoke(main, [*path[:2], "--help"]) if path else None
        if result is not None and result.exit_code != 0:  # a command with a FILE argument first
            result = runner.invoke(main, [path[0], "--help"])
        assert result is not None and result.exit_code == 0, (line, result.output if result else "")
        assert "Usage:" in result.output
