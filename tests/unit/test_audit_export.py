"""`renkei audit export` and `verify-export`: one municipality's records for its auditor, the
others' withheld, verifiable with nothing but the file and the public key, and every kind of
tampering found."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bus.audit import AuditEvent, AuditLog
from bus.cli import main
from bus.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import audit_cases as cases  # the contract suite's sample life of a message

A, B = cases.MUNICIPALITY, "271004"


def of_b(events: list[AuditEvent]) -> list[AuditEvent]:
    return [dataclasses.replace(e, municipality=B, subject="b" * 32, message_id="c" * 32) for e in events]


@pytest.fixture(params=["format 2", "format 1, migrated"])
def config(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A shared trail: A's and B's records interleaved, a checkpoint every 5 records; either
    written by this version, or written in format 1 and then re-chained by `renkei audit migrate`."""
    assert CliRunner().invoke(main, ["audit", "keygen", str(tmp_path / "audit.pem")]).exit_code == 0
    (tmp_path / "pseudonym.key").write_bytes(cases.KEY)
    path = tmp_path / "renkei.toml"
    text = (f'[bus]\npseudonym_key_file = "pseudonym.key"\nmunicipalities = ["{A}", "{B}"]\n'
            '[audit]\nstore = "audit.sqlite"\nsigning_key_file = "audit.pem"\ncheckpoint_every = 5\n')
    path.write_text(text, encoding="utf-8")
    groups = [cases.life(1)[:3], of_b(cases.life(1)), cases.life(2), of_b(cases.life(2))[:2]]  # ends with B's
    if request.param == "format 2":
        with AuditLog.open(Settings.load(path, env={})) as log:
            for group in groups:
                log.append(group)
        return path
    cases.write_format_1(tmp_path / "audit.sqlite", groups, tmp_path / "audit.pem", 5)
    refused = export(path, "--municipality", A, "--out", str(tmp_path / "refused.jsonl"))
    assert refused.exit_code == 1 and "renkei audit migrate --to 2" in refused.output
    migrated = CliRunner().invoke(main, ["audit", "migrate", "--to", "2", "--out", str(tmp_path / "audit2.sqlite"),
                                         "--witness", str(tmp_path / "witness2.jsonl"), "--config", str(path)],
                                  env={"RENKEI_PSEUDONYM_KEY": ""})
    assert migrated.exit_code == 0, migrated.output
    assert f"migrated {sum(map(len, groups))} records ({sum(map(len, groups))} of format 1)" in migrated.output
    path.write_text(text.replace('"audit.sqlite"', '"audit2.sqlite"') + 'witness = "witness2.jsonl"\n',
                    encoding="utf-8")
    return path


def export(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["audit", "export", "--config", str(config), *args],
                              env={"RENKEI_PSEUDONYM_KEY": ""})


def verify(path: Path, *keys: Path) -> Result:
    return CliRunner().invoke(main, ["audit", "verify-export", str(path),
                                     *[arg for k in keys for arg in ("--public-key", str(k))]])


@pytest.fixture
def exported(config: Path) -> Path:
    out = config.parent / "export-a.jsonl"
    result = export(config, "--municipality", A, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def entries(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def rewrite(path: Path, lines: list[dict]) -> None:  # type: ignore[type-arg]
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in lines), encoding="utf-8")


def test_an_export_holds_only_the_municipalitys_records_and_verifies(config: Path, exported: Path) -> None:
    lines = entries(exported)
    header, body, end = lines[0], lines[1:-1], lines[-1]["end"]
    records = [e["record"] for e in body if "record" in e]
    runs = [e["withheld"] for e in body if "withheld" in e]
    checkpoints = [e["checkpoint"] for e in body if "checkpoint" in e]
    n_a = 3 + len(cases.life(2))
    n_b = len(cases.life(1)) + 2 + ("audit2" in config.read_text(encoding="utf-8"))  # + the `migrated` record
    assert header["municipality"] == A and (end["records"], end["withheld"]) == (n_a, n_b)
    assert header["head"]["seq"] == n_a + n_b
    assert {r["municipality"] for r in records} == {A}
    assert sum(r["to"] - r["from"] + 1 for r in runs) == n_b
    text = exported.read_text(encoding="utf-8")
    assert "b" * 32 not in text and "c" * 32 not in text and B not in text  # nothing of B's records
    known = {r["seq"] for r in records} | {r["to"] for r in runs}
    assert checkpoints and {c["seq"] for c in checkpoints} <= known  # each checkpoint's hash is in the file
    result = verify(exported, config.parent / "audit.pem.pub")
    assert result.exit_code == 0, result.output
    assert f"OK: {n_a} records of municipality {A}, chain to record {n_a + n_b}" in result.output
    assert "signatures checked" in result.output


def test_an_export_of_a_municipality_without_records_is_all_withheld(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "none.jsonl"
    assert export(config, "--municipality", "011002", "--out", str(out)).exit_code == 0
    assert entries(out)[-1]["end"]["records"] == 0
    assert verify(out, config.parent / "audit.pem.pub").exit_code == 0


def test_without_a_public_key_the_signatures_are_not_checked_and_it_says_so(exported: Path) -> None:
    result = verify(exported)
    assert result.exit_code == 0
    assert "signatures were not checked" in result.output


def _first(lines: list[dict], kind: str) -> dict:  # type: ignore[type-arg]
    return next(e for e in lines[1:] if kind in e)


@pytest.mark.parametrize(("tamper", "found"), [
    ("alter a record", "was altered"),
    ("relabel a record", "was altered"),
    ("remove a record", "is out of place"),
    ("change a withheld hash", "do not chain to the hash it states"),
    ("cut the end", "is missing|not covered by a signed checkpoint"),
    ("forge a checkpoint", "does not verify"),
    ("remove a checkpoint", "the end line counts"),
    ("append a record", "after the end line"),
    ("rewrite the chain under a checkpoint", "do not chain|the chain up to"),
])
def test_every_kind_of_tampering_is_found(config: Path, exported: Path, tamper: str, found: str) -> None:
    lines = entries(exported)
    if tamper == "alter a record":
        _first(lines, "record")["record"]["destination"] = "somewhere-else"
    elif tamper == "relabel a record":  # pass another municipality's record off as A's, or back
        _first(lines, "record")["record"]["municipality"] = B
    elif tamper == "remove a record":
        lines.remove(_first(lines, "record"))
    elif tamper == "change a withheld hash":
        _first(lines, "withheld")["withheld"]["hash"] = "f" * 64
    elif tamper == "cut the end":
        lines = [e for e in lines if "checkpoint" not in e][:-2]
    elif tamper == "forge a checkpoint":
        checkpoint = _first(lines, "checkpoint")["checkpoint"]
        checkpoint["signature"] = ("0" if checkpoint["signature"][0] != "0" else "1") + checkpoint["signature"][1:]
    elif tamper == "remove a checkpoint":
        lines.remove(_first(lines, "checkpoint"))
    elif tamper == "append a record":
        lines.append(_first(lines, "record"))
    elif tamper == "rewrite the chain under a checkpoint":  # linked again, but not what was signed
        signed = {e["checkpoint"]["seq"] for e in lines[1:] if "checkpoint" in e}
        at = next(i for i, e in enumerate(lines) if "withheld" in e and i and e["withheld"]["to"] in signed
                  and "record" in lines[i + 1])
        lines[at]["withheld"]["hash"] = lines[at + 1]["record"]["prev_hash"] = "e" * 64
    rewrite(exported, lines)
    result = verify(exported, config.parent / "audit.pem.pub")
    assert result.exit_code == 1, result.output
    assert "BROKEN at record" in result.output and re.search(found, result.output)


@pytest.mark.parametrize(("text", "found"), [
    ("", "line 1: not a renkei audit export"),
    ('{"schema": "something else"}\n', "line 1: not a renkei audit export"),
    ('{"schema": "renkei.audit-export/2", "head": {"seq": 0}}\n{not json\n', "line 2: not JSON"),
    ('{"schema": "renkei.audit-export/2", "head": {"seq": 0}}\n{"other": 1}\n', "line 2: neither a record"),
    ('{"schema": "renkei.audit-export/2", "head": {"seq": 0}}\n{"withheld": {"from": 1}}\n', "line 2: malformed"),
])
def test_a_file_that_is_not_an_export_is_refused_with_its_line(tmp_path: Path, text: str, found: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(text, encoding="utf-8")
    result = verify(path)
    assert result.exit_code == 1
    assert found in result.output


def test_export_refuses_a_malformed_municipality_code(config: Path) -> None:
    result = export(config, "--municipality", "13101")
    assert result.exit_code == 2 and "6-digit" in result.output


def test_export_to_standard_output(config: Path) -> None:
    result = CliRunner().invoke(main, ["audit", "export", "--config", str(config), "--municipality", A],
                                env={"RENKEI_PSEUDONYM_KEY": ""})
    assert result.exit_code == 0
    assert json.loads(result.stdout.splitlines()[0])["schema"] == "renkei.audit-export/2"


# -- forgeries by someone who can recompute every hash, but not sign ---------------------------

def rechain(lines: list[dict]) -> None:  # type: ignore[type-arg]
    """Recompute every hash after a change, as a forger with the file and no key would: each
    record's prev_hash and hash, each run's prev_hash and hash from its digests, the header's head."""
    from bus.audit.chain import GENESIS, AuditRecord, chain_hash

    prev, seq = GENESIS, 0
    for entry in lines[1:]:
        if "record" in entry:
            entry["record"]["prev_hash"] = prev
            prev = entry["record"]["hash"] = AuditRecord.from_row(entry["record"]).computed_hash
            seq = entry["record"]["seq"]
        elif "withheld" in entry:
            entry["withheld"]["prev_hash"] = run = prev
            for digest in entry["withheld"]["digests"]:
                run = chain_hash(run, digest)
            prev = entry["withheld"]["hash"] = run
            seq = entry["withheld"]["to"]
    lines[0]["head"] = {"seq": seq, "hash": prev}


def drop_checkpoints_after(lines: list[dict], seq: int) -> list[dict]:  # type: ignore[type-arg]
    kept = [e for e in lines if "checkpoint" not in e or e["checkpoint"]["seq"] < seq]
    kept[-1]["end"]["checkpoints"] = sum(1 for e in kept if "checkpoint" in e)
    return kept


@pytest.mark.parametrize(("forgery", "found"), [
    # the issue's: one record altered, its hash recomputed, the next withheld run's prev_hash set to it
    ("alter a record, patch the next run's prev_hash", "do not chain to the hash it states|the chain up to"),
    ("alter a record, recompute the chain to the head", "the chain up to"),
    ("alter a record, recompute the chain, drop the checkpoints after it", "not covered by a signed checkpoint"),
    ("alter a withheld digest, recompute the chain", "the chain up to|not covered"),
    ("drop a withheld digest and shorten the run", "digests"),
    ("swap two records and renumber them", "the chain up to|not covered"),
    ("insert a forged record and renumber", "the chain up to|not covered|end line|a signed checkpoint points at it"),
    ("remove a record and renumber", "is missing|the chain up to|not covered|end line"),
    ("move a checkpoint to another record", "does not verify"),
])
def test_a_forged_export_with_recomputed_hashes_fails(config: Path, exported: Path, forgery: str, found: str) -> None:
    """Every forgery that recomputes hashes ends at a hash no signature covers."""
    lines = entries(exported)
    records = [i for i, e in enumerate(lines) if "record" in e]
    first = records[0]
    if forgery == "alter a record, patch the next run's prev_hash":
        from bus.audit.chain import AuditRecord

        at = next(i for i in records if "withheld" in lines[i + 1])
        lines[at]["record"]["destination"] = "somewhere-else"
        lines[at]["record"]["hash"] = AuditRecord.from_row(lines[at]["record"]).computed_hash
        lines[at + 1]["withheld"]["prev_hash"] = lines[at]["record"]["hash"]
    elif forgery.startswith("alter a record, recompute"):
        lines[first]["record"]["destination"] = "somewhere-else"
        rechain(lines)
        if "drop the checkpoints" in forgery:
            lines = drop_checkpoints_after(lines, lines[first]["record"]["seq"])
    elif forgery == "alter a withheld digest, recompute the chain":
        run = _first(lines, "withheld")["withheld"]
        run["digests"][0] = "0" * 64
        rechain(lines)
    elif forgery == "drop a withheld digest and shorten the run":
        run = _first(lines, "withheld")["withheld"]
        run["digests"].pop()
        run["to"] -= 1
    elif forgery == "swap two records and renumber them":
        a, b = records[0], records[1]
        lines[a]["record"], lines[b]["record"] = lines[b]["record"], lines[a]["record"]
        lines[a]["record"]["seq"], lines[b]["record"]["seq"] = lines[b]["record"]["seq"], lines[a]["record"]["seq"]
        rechain(lines)
    elif forgery in ("insert a forged record and renumber", "remove a record and renumber"):
        if forgery.startswith("insert"):
            lines.insert(first + 1, json.loads(json.dumps(lines[first])))
            lines[first + 1]["record"]["destination"] = "forged"
            step = 1
        else:
            del lines[first]
            step = -1
        for entry in lines[first + (step > 0):]:
            if "record" in entry:
                entry["record"]["seq"] += step
            elif "withheld" in entry:
                entry["withheld"]["from"] += step
                entry["withheld"]["to"] += step
        lines[-1]["end"]["records"] += step
        rechain(lines)
    elif forgery == "move a checkpoint to another record":
        checkpoint = _first(lines, "checkpoint")["checkpoint"]
        checkpoint["seq"] = lines[first]["record"]["seq"]
        checkpoint["hash"] = lines[first]["record"]["hash"]
    rewrite(exported, lines)
    result = verify(exported, config.parent / "audit.pem.pub")
    assert result.exit_code == 1, result.output
    assert "BROKEN at record" in result.output and re.search(found, result.output), result.output


def test_an_export_of_format_1_is_refused_as_unprovable(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    path.write_text('{"schema": "renkei.audit-export/1", "head": {"seq": 0}}\n', encoding="utf-8")
    result = verify(path)
    assert result.exit_code == 1 and "format 1 cannot prove" in result.output


def test_verify_export_without_a_key_exits_3_when_strict(exported: Path) -> None:
    result = CliRunner().invoke(main, ["audit", "verify-export", str(exported), "--strict"])
    assert result.exit_code == 3 and "not proven" in result.output


def test_an_export_over_records_of_format_1_is_refused_clearly(tmp_path: Path) -> None:
    """A trail written before format 2 verifies, but another municipality's old record cannot be
    withheld provably: the export says so instead of writing a file it cannot prove."""
    import sqlite3

    from bus.audit import open_store
    from bus.audit.chain import GENESIS, AuditRecord, legacy_hash
    from bus.audit.store import _row

    path = tmp_path / "audit.sqlite"
    open_store(path).close()
    event = of_b(cases.life(1))[0]
    old = AuditRecord(1, GENESIS, legacy_hash(1, GENESIS, event), event)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"INSERT INTO audit_records VALUES ({', '.join('?' for _ in _row(old))})", _row(old))
    db.execute("UPDATE audit_head SET seq = 1, hash = ?", (old.hash,))
    db.close()
    config = tmp_path / "renkei.toml"
    config.write_text('[audit]\nstore = "audit.sqlite"\n', encoding="utf-8")
    assert CliRunner().invoke(main, ["audit", "verify", "--config", str(config)]).exit_code == 0
    result = export(config, "--municipality", A, "--out", str(tmp_path / "x.jsonl"))
    assert result.exit_code == 1 and "format 1" in result.output
