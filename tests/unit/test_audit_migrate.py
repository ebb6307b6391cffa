"""`renkei audit migrate --to 2`: a trail of format 1 re-chained, signed and witnessed in a new
store — the same contents record for record, the old head named by the `migrated` record, the
old store untouched — and refused when the old trail is broken, unsigned or the target not empty.
(The exports of a migrated trail face every forgery in test_audit_export.py.)"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from bus.audit import open_store
from bus.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import audit_cases as cases  # the contract suite's sample life of a message


def _old_trail(tmp_path: Path, *, key: bool = True) -> Path:
    assert CliRunner().invoke(main, ["audit", "keygen", str(tmp_path / "audit.pem")]).exit_code == 0
    cases.write_format_1(tmp_path / "audit.sqlite", [cases.life(1), cases.life(2)], tmp_path / "audit.pem", 4)
    config = tmp_path / "renkei.toml"
    config.write_text('[audit]\nstore = "audit.sqlite"\n' + ('signing_key_file = "audit.pem"\n' if key else ""),
                      encoding="utf-8")
    return config


def _migrate(config: Path, *more: str) -> Result:
    return CliRunner().invoke(main, ["audit", "migrate", "--to", "2", "--config", str(config),
                                     "--out", str(config.parent / "audit2.sqlite"), *more])


def test_a_migrated_trail_holds_the_same_records_and_names_the_old_head(tmp_path: Path) -> None:
    config = _old_trail(tmp_path)
    with open_store(tmp_path / "audit.sqlite") as old:
        before = [(r.seq, r.hash, r.digest) for r in old.records()]
        old_head = old.head()
    result = _migrate(config, "--witness", str(tmp_path / "w2.jsonl"))
    assert result.exit_code == 0, result.output
    assert f"migrated {len(before)} records ({len(before)} of format 1)" in result.output
    with open_store(tmp_path / "audit.sqlite") as old:
        assert [(r.seq, r.hash, r.digest) for r in old.records()] == before  # the archive is untouched
    with open_store(tmp_path / "audit2.sqlite") as new:
        records = list(new.records())
        checkpoints = new.checkpoints()
    assert [(r.seq, r.digest) for r in records[:-1]] == [(seq, digest) for seq, _, digest in before]
    assert all(r.hash != h for r, (_, h, _) in zip(records, before, strict=False))  # re-chained: new hashes
    anchor = records[-1]
    assert anchor.event.event == "migrated" and old_head.hash in (anchor.event.reason or "")
    assert checkpoints[-1].seq == anchor.seq
    config.write_text('[audit]\nstore = "audit2.sqlite"\nsigning_key_file = "audit.pem"\nwitness = "w2.jsonl"\n',
                      encoding="utf-8")
    verified = CliRunner().invoke(main, ["audit", "verify", "--config", str(config), "--strict"])
    assert verified.exit_code == 0, verified.output
    assert f"OK: {len(records)} records" in verified.output


def test_a_broken_old_trail_is_not_migrated(tmp_path: Path) -> None:
    config = _old_trail(tmp_path)
    db = sqlite3.connect(tmp_path / "audit.sqlite", isolation_level=None)
    db.execute("DROP TRIGGER IF EXISTS audit_records_no_update")
    db.execute("UPDATE audit_records SET destination = 'elsewhere' WHERE seq = 3")
    db.close()
    result = _migrate(config)
    assert result.exit_code == 1 and "broken at record 3" in result.output and "not migrated" in result.output
    with open_store(tmp_path / "audit2.sqlite") as new:
        assert new.head().seq == 0


def test_migrating_needs_a_signing_key_and_an_empty_target(tmp_path: Path) -> None:
    unsigned = _old_trail(tmp_path, key=False)
    result = _migrate(unsigned)
    assert result.exit_code == 2 and "no signing key" in result.output
    (tmp_path / "again").mkdir()
    config = _old_trail(tmp_path / "again")
    assert _migrate(config).exit_code == 0
    again = _migrate(config)
    assert again.exit_code == 2 and "is not empty" in again.output
