"""The small rough edges of a newcomer's first hour (issue 16, item 7), each checked."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from bus.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_routes_test_of_an_avro_file_says_it_takes_xml(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["sample", "jumin.idou", "--format", "avro", "--out", str(tmp_path)]).exit_code == 0
    [avro] = tmp_path.glob("*.avro")
    result = runner.invoke(main, ["routes", "test", str(avro)])
    assert result.exit_code == 2
    assert "is Avro; `routes test` takes one jumin.idou XML file" in result.output
    assert "R207" not in result.output


def test_an_avro_sample_is_not_written_to_a_terminal_but_is_to_a_pipe() -> None:
    main_fd, terminal = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "bus.cli", "sample", "jumin.idou", "--format", "avro"],
                              stdout=terminal, stderr=subprocess.PIPE, timeout=60, check=False, cwd=ROOT)
    finally:
        os.close(terminal)
        os.close(main_fd)
    assert done.returncode == 2
    assert b"Avro is binary and stdout is a terminal" in done.stderr
    piped = subprocess.run([sys.executable, "-m", "bus.cli", "sample", "jumin.idou", "--format", "avro"],
                           capture_output=True, timeout=60, check=False, cwd=ROOT)
    assert piped.returncode == 0 and len(piped.stdout) > 100


def _leaf_commands() -> list[list[str]]:
    import click

    from bus.cli import COMMANDS

    leaves: list[list[str]] = []
    for name in sorted(COMMANDS):
        command = main.get_command(click.Context(main), name)
        if isinstance(command, click.Group):
            leaves += [[name, sub] for sub in command.list_commands(click.Context(command))]
        else:
            leaves.append([name])
    return leaves


def test_every_command_states_its_exit_codes_in_its_help() -> None:
    runner = CliRunner()
    helps = {" ".join(path): runner.invoke(main, [*path, "--help"]).output for path in _leaf_commands()}
    silent = [name for name, text in helps.items() if "Exit status" not in text and "Exit codes" not in text]
    assert silent == []


def test_an_unreachable_broker_is_one_clean_line_without_the_driver_s_own(tmp_path: Path) -> None:
    """aiormq logged "error when creating transport: <AMQPConnectionError…>" before the error."""
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\nbroker_url = "amqp://guest:guest@127.0.0.1:1/"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bus.cli", "retry", "now", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [line for line in done.stderr.splitlines() if line.startswith("renkei ")]
    assert "error when creating transport" not in done.stderr and "guest:guest" not in done.stderr


def test_no_hint_names_a_python_that_a_stock_debian_does_not_have() -> None:
    """Debian has `python3`, not `python`: a hint to run `python -c` fails as typed."""
    texts = [*(ROOT / "bus").rglob("*.py"), *(ROOT / "adapters").rglob("*.py"), *(ROOT / "docs").glob("*.md"),
             ROOT / "README.md", ROOT / "docker" / "README.md"]
    found = [str(p.relative_to(ROOT)) for p in texts if "`python -c" in p.read_text(encoding="utf-8")]
    assert found == []


def test_the_docker_readme_says_one_thing_about_where_a_worker_reconnects() -> None:
    text = (ROOT / "docker" / "README.md").read_text(encoding="utf-8")
    assert "reconnects to that URL" not in text and "reconnects to the next node" in text


def test_shell_completion_as_the_readme_documents_it_completes_commands_and_options() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "_RENKEI_COMPLETE=bash_source renkei" in readme
    renkei = [str(Path(sys.executable).parent / "renkei")]  # the installed command, as a shell runs it
    script = subprocess.run(renkei, env={**os.environ, "_RENKEI_COMPLETE": "bash_source"},
                            capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert "_renkei_completion()" in script.stdout and "complete " in script.stdout

    def complete(words: str, index: int) -> list[str]:
        env = {**os.environ, "_RENKEI_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(index)}
        done = subprocess.run(renkei, env=env, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
        return [line.split(",", 1)[1] for line in done.stdout.splitlines()]

    assert complete("renkei ret", 1) == ["retry"]
    assert complete("renkei retry now --dest", 3) == ["--destination"]
