"""Every command that reports can answer in JSON: `routes check`, `audit verify` and `queues
check` print one document with what the text says, and keep their exit codes."""

from __future__ import annotations

import json
import sqlite3
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bus.audit import AuditLog
from bus.cli import main
from bus.paths import routes_dir
from bus.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import audit_cases as cases  # the contract suite's sample life of a message


def _run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env={"RENKEI_BROKER_URL": None, "RENKEI_PSEUDONYM_KEY": ""})
    assert "Traceback" not in result.output
    return result


def test_routes_check_json_lists_every_route_with_its_place() -> None:
    result = _run("routes", "check", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["ok"] is True and document["problems"] == []
    zei = [r for r in document["routes"] if r["destination"] == "zei"]
    assert zei and all(r["where"].startswith("routes/") or ":" in r["where"] for r in zei)
    assert {"name", "destination", "projection", "legal_basis", "when", "where"} == set(zei[0])


def test_routes_check_json_names_each_problem_at_its_line_and_exits_1(tmp_path: Path) -> None:
    for source in routes_dir().glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    broken = tmp_path / "zei.yaml"
    broken.write_text(broken.read_text(encoding="utf-8").replace("legal_basis:", "legal_bassis:", 1), encoding="utf-8")
    result = _run("routes", "check", "--json", "--dir", str(tmp_path))
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["ok"] is False and document["routes"] == []
    [problem] = [p for p in document["problems"] if "legal_bassis" in p["message"]]
    assert problem["where"].startswith(f"{broken}:") and "did you mean 'legal_basis'?" in problem["message"]


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    (tmp_path / "pseudonym.key").write_bytes(cases.KEY)
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\npseudonym_key_file = "pseudonym.key"\n[audit]\nstore = "audit.sqlite"\n',
                      encoding="utf-8")
    with AuditLog.open(Settings.load(config, env={})) as log:
        log.append(cases.life(1))
    return config


def test_audit_verify_json_says_ok_with_its_counts(trail: Path) -> None:
    result = _run("audit", "verify", "--json", "--config", str(trail))
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["ok"] is True and document["records"] == 7 and document["first_problem"] is None


def test_audit_verify_json_names_the_first_break_and_exits_1(trail: Path) -> None:
    db = sqlite3.connect(trail.parent / "audit.sqlite", isolation_level=None)
    db.execute("DROP TRIGGER audit_records_no_update")
    db.execute("UPDATE audit_records SET route = 'forged' WHERE seq = 3")
    db.close()
    result = _run("audit", "verify", "--json", "--config", str(trail))
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["ok"] is False and document["first_problem"]["seq"] == 3 and document["problems"] >= 1


def test_queues_check_json_on_the_embedded_broker_is_an_empty_list(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n', encoding="utf-8")
    result = _run("queues", "check", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"ok": True, "queues": []}


@pytest.mark.amqp
def test_queues_check_json_on_rabbitmq_gives_each_queue_its_status(amqp_url: str, tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text(f'[bus]\nstate_dir = "var"\nbroker_url = "{amqp_url}"\n', encoding="utf-8")
    missing = f"renkei.test.{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(main, ["queues", "check", "--json", "--config", str(config), missing])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["queues"] == [
        {"name": missing, "status": "missing", "messages": 0, "consumers": 0,
         "detail": "the bus declares it when it starts", "needs_migration": False}]
