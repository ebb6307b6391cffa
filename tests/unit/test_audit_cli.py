"""`renkei audit verify|show|trail|checkpoint|keygen`: output, exit codes, CSV, no personal data."""

from __future__ import annotations

import csv
import io
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bus.audit import AuditEvent, AuditLog, EventType
from bus.cli import main
from bus.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import audit_cases as cases  # the contract suite's sample life of a message

OLD_KEY = b"an-earlier-pseudonym-key-0000001"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A renkei.toml with a pseudonym key file, a signing key, an earlier pseudonym key, and a trail."""
    result = CliRunner().invoke(main, ["audit", "keygen", str(tmp_path / "audit.pem")])
    assert result.exit_code == 0, result.output
    (tmp_path / "pseudonym.key").write_bytes(cases.KEY)
    (tmp_path / "old-pseudonym.key").write_bytes(OLD_KEY)
    path = tmp_path / "renkei.toml"
    path.write_text(
        '[bus]\npseudonym_key_file = "pseudonym.key"\nmunicipalities = ["131016"]\n'
        '[audit]\nstore = "audit.sqlite"\nsigning_key_file = "audit.pem"\ncheckpoint_every = 5\n'
        'previous_pseudonym_key_files = ["old-pseudonym.key"]\n', encoding="utf-8")
    with AuditLog.open(Settings.load(path, env={})) as log:
        log.append(cases.life(1))
        log.append(cases.life(1, "000999"))
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["audit", *args, "--config", str(config)], env={"RENKEI_PSEUDONYM_KEY": ""})


def test_verify_says_ok_with_counts(config: Path) -> None:
    """An untouched trail: OK, 14 records, its checkpoints, exit 0."""
    result = run(config, "verify")
    assert result.exit_code == 0, result.output
    assert "OK: 14 records, 2 checkpoints, last checkpoint at record 14" in result.output


def test_verify_names_the_first_broken_record_and_exits_1(config: Path) -> None:
    """A record altered in the database: BROKEN at record 3, exit 1."""
    db = sqlite3.connect(config.parent / "audit.sqlite", isolation_level=None)
    db.execute("DROP TRIGGER audit_records_no_update")
    db.execute("UPDATE audit_records SET route = 'forged' WHERE seq = 3")
    db.close()
    result = run(config, "verify")
    assert result.exit_code == 1
    assert "BROKEN at record 3: was altered" in result.output


def test_verify_without_a_trail_is_a_usage_error(tmp_path: Path) -> None:
    """No trail file: exit 2, saying where it looked."""
    result = CliRunner().invoke(main, ["audit", "verify", "--store", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 2
    assert "no audit trail at" in result.output


def test_show_prints_a_message_life_in_order(config: Path) -> None:
    """Every event of the message, one line each, in the order they happened."""
    result = run(config, "show", cases.envelope(1).message_id)
    assert result.exit_code == 0, result.output
    events = [line.split()[2] for line in result.output.splitlines()[1:]]
    assert events == ["received", "accepted", "routed", "routed", "delivered", "retried", "delivered"]
    assert "receipt=kokuho-r-1" in result.output and "reason=HTTP 503" in result.output


def test_show_of_an_unknown_message_exits_1(config: Path) -> None:
    result = run(config, "show", "f" * 32)
    assert result.exit_code == 1
    assert "no audit records for message" in result.output


def test_trail_answers_who_received_the_data_when_under_which_route_and_basis(config: Path) -> None:
    """Given the 宛名番号: the deliveries of that resident only (not of the other resident)."""
    result = run(config, "trail", "--resident", cases.ADDRESS_NUMBER)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("20")]
    assert len(rows) == 2
    assert "zei" in rows[0] and "zei-all" in rows[0]
    assert "kokuho-household" in rows[1] and "番号法第9条別表第一の三十" in rows[1]


def test_trail_csv_has_a_header_and_one_row_per_delivery(config: Path) -> None:
    """--csv: a header row, then destination, route, legal basis … per delivery."""
    result = run(config, "trail", "--resident", cases.ADDRESS_NUMBER, "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["destination"] for r in rows] == ["zei", "kokuho"]
    assert rows[1]["legal_basis"] == "番号法第9条別表第一の三十"
    assert {r["subject"] for r in rows} == {cases.subject()}
    assert set(rows[0]) >= {"at", "municipality", "destination", "kind", "route", "legal_basis", "message_id"}


def test_trail_since_and_municipality_narrow_the_answer(config: Path) -> None:
    """--since in the future or another municipality: nothing found, exit 1."""
    assert run(config, "trail", "--resident", cases.ADDRESS_NUMBER, "--since", "2999-01-01").exit_code == 1
    assert run(config, "trail", "--resident", cases.ADDRESS_NUMBER, "--municipality", "011002").exit_code == 1
    assert run(config, "trail", "--resident", cases.ADDRESS_NUMBER, "--since", "2000-01-01T09:00+09:00",
               "--municipality", "131016").exit_code == 0


def test_trail_finds_records_written_under_an_earlier_pseudonym_key(config: Path) -> None:
    """After a key rotation, records under the old key are still found (previous_pseudonym_key_files)."""
    old = cases.Pseudonymizer(OLD_KEY)
    env = cases.envelope(7)
    from dataclasses import replace

    env = replace(env, subject=old.subject("131016", cases.ADDRESS_NUMBER), message_id="e" * 32)
    with AuditLog.open(Settings.load(config, env={})) as log:
        log.record(EventType.DELIVERED, env.for_destination("zei", "zei.jumin", 1, "zei-all", None), receipt="old")
    rows = list(csv.DictReader(io.StringIO(run(config, "trail", "--resident", cases.ADDRESS_NUMBER, "--csv").output)))
    assert [r["receipt"] for r in rows] == ["zei-r-1", "kokuho-r-1", "old"]


def test_trail_refuses_a_malformed_resident_without_echoing_it(config: Path) -> None:
    """A usage error (exit 2) that does not repeat the value given."""
    result = run(config, "trail", "--resident", "12-34-X")
    assert result.exit_code == 2
    assert "12-34-X" not in result.output


def test_no_cli_output_holds_a_plaintext_personal_value(config: Path) -> None:
    """verify, show and trail (table and CSV) print pseudonyms, never the 宛名番号 or 個人番号."""
    with AuditLog.open(Settings.load(config, env={})) as log:
        log.append([AuditEvent.of(EventType.DISCARDED, cases.envelope(2), actor="operator-1",
                                  reason=f"wrong 個人番号 {cases.PERSONAL_NUMBER}")])
    outputs = [run(config, "verify").output, run(config, "show", cases.envelope(1).message_id).output,
               run(config, "show", cases.envelope(2).message_id, "--json").output,
               run(config, "trail", "--resident", cases.ADDRESS_NUMBER).output,
               run(config, "trail", "--resident", cases.ADDRESS_NUMBER, "--csv").output,
               run(config, "export", "--municipality", cases.MUNICIPALITY).output]
    for output in outputs:
        assert cases.ADDRESS_NUMBER not in output and cases.PERSONAL_NUMBER not in output
    assert "operator-1" in outputs[2] and "operator-1" in outputs[-1]  # the export holds the records


def test_checkpoint_signs_the_head_once(config: Path) -> None:
    """`audit checkpoint` signs an unsigned head; a second call has nothing to sign."""
    with AuditLog.open(Settings.load(config, env={})) as log:
        log.store.append(cases.life(3)[:1])  # written without the signer
    assert "signed record 15" in run(config, "checkpoint").output
    assert "nothing to sign" in run(config, "checkpoint").output


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    """A second keygen to the same path is refused (exit 2); the private key file is 0600."""
    path = tmp_path / "k.pem"
    assert CliRunner().invoke(main, ["audit", "keygen", str(path)]).exit_code == 0
    assert path.stat().st_mode & 0o777 == 0o600 and (tmp_path / "k.pem.pub").is_file()
    again = CliRunner().invoke(main, ["audit", "keygen", str(path)])
    assert again.exit_code == 2 and "never overwritten" in again.output


def _rewrite_chain_and_checkpoints(db_path: Path) -> None:
    """Record 3 altered, every later hash and every checkpoint's hash recomputed (signatures stale)."""
    from dataclasses import replace

    from bus.audit import open_store
    from bus.audit.chain import link

    with open_store(db_path) as store:
        records = list(store.records())
    forged = link(cases._head_before(records[0]), [replace(r.event, route="forged") if r.seq == 3 else r.event
                                                   for r in records])
    db = sqlite3.connect(db_path, isolation_level=None)
    for trigger in ("audit_records_no_update", "audit_checkpoints_no_update"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for r in forged:
        db.execute("UPDATE audit_records SET route = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                   (r.event.route, r.prev_hash, r.hash, r.seq))
        db.execute("UPDATE audit_checkpoints SET hash = ? WHERE seq = ?", (r.hash, r.seq))
    db.execute("UPDATE audit_head SET hash = ? WHERE id = 1", (forged[-1].hash,))
    db.close()


def test_verify_without_a_key_says_what_it_could_not_prove_and_strict_exits_3(tmp_path: Path, config: Path) -> None:
    """A chain and its checkpoint hashes rewritten: with no key configured nothing can tell, so verify
    says so, and --strict fails; with the key it is BROKEN."""
    _rewrite_chain_and_checkpoints(config.parent / "audit.sqlite")
    bare = tmp_path / "bare.toml"
    bare.write_text(f'[audit]\nstore = "{config.parent / "audit.sqlite"}"\n', encoding="utf-8")
    lenient = run(bare, "verify")
    assert lenient.exit_code == 0 and "not proven" in lenient.output and "no public key" in lenient.output
    strict = run(bare, "verify", "--strict")
    assert strict.exit_code == 3
    keyed = run(bare, "verify", "--public-key", str(config.parent / "audit.pem.pub"))
    assert keyed.exit_code == 1 and "does not verify" in keyed.output


def test_verify_with_the_witness_catches_records_and_checkpoints_cut_off(tmp_path: Path) -> None:
    """[audit] witness configured: the end cut off (records, checkpoints, head) is BROKEN; without the
    witness the same store says OK but not proven."""
    assert CliRunner().invoke(main, ["audit", "keygen", str(tmp_path / "audit.pem")]).exit_code == 0
    config = tmp_path / "renkei.toml"
    config.write_text('[audit]\nstore = "audit.sqlite"\nsigning_key_file = "audit.pem"\ncheckpoint_every = 7\n'
                      'witness = "elsewhere/witness.jsonl"\n', encoding="utf-8")
    with AuditLog.open(Settings.load(config, env={})) as log:
        for history in (1, 2):
            log.append(cases.life(history))
    assert run(config, "verify", "--strict").exit_code == 0
    db = sqlite3.connect(tmp_path / "audit.sqlite", isolation_level=None)
    for trigger in ("audit_records_no_delete", "audit_checkpoints_no_delete"):
        db.execute(f"DROP TRIGGER {trigger}")
    db.execute("DELETE FROM audit_records WHERE seq > 7")
    db.execute("DELETE FROM audit_checkpoints WHERE seq > 7")
    db.execute("UPDATE audit_head SET seq = 7, hash = (SELECT hash FROM audit_records WHERE seq = 7)")
    db.close()
    result = run(config, "verify")
    assert result.exit_code == 1 and "rolled back" in result.output
    config.write_text(config.read_text(encoding="utf-8").replace('witness = "elsewhere/witness.jsonl"\n', ""),
                      encoding="utf-8")
    blind = run(config, "verify", "--strict")
    assert blind.exit_code == 3 and "no witness" in blind.output


def test_trail_columns_stay_aligned_with_a_long_route_name(tmp_path: Path) -> None:
    """Before, the route column was 20 wide: a longer name pushed its row's legal basis right."""
    import dataclasses

    (tmp_path / "pseudonym.key").write_bytes(cases.KEY)
    path = tmp_path / "renkei.toml"
    path.write_text('[bus]\npseudonym_key_file = "pseudonym.key"\nmunicipalities = ["131016"]\n'
                    '[audit]\nstore = "audit.sqlite"\n', encoding="utf-8")
    long = "fukushi-children-and-welfare-recipients"
    events = [dataclasses.replace(e, route=long) if e.route == "zei-all" else e for e in cases.life(1)]
    with AuditLog.open(Settings.load(path, env={})) as log:
        log.append(events)
    result = run(path, "trail", "--resident", cases.ADDRESS_NUMBER)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header, rows = lines[0], [line for line in lines if line.startswith("20")]
    assert any(long in row for row in rows) and len(rows) == 2
    start = header.index("legal basis")
    assert all(row[start - 2:start] == "  " and row[start] != " " for row in rows), result.output
