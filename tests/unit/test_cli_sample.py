"""`renkei sample`: valid samples to stdout or to files, deterministic, with clear usage errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bus.catalog import Catalog
from bus.cli import main
from bus.validation.validator import validate

CATALOG = Catalog.load()


def run(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(main, ["sample", *args], catch_exceptions=False)
    return result.exit_code, result.stdout_bytes, result.stderr


def test_one_sample_goes_to_stdout_as_valid_xml() -> None:
    """Without --out, one jumin.idou sample of the asked 異動事由 is printed as XML that validates."""
    code, out, _ = run("jumin.idou", "--event", "TENSHUTSU", "--seed", "3")
    assert code == 0
    record = validate(out, content_type="application/xml", catalog=CATALOG).record
    assert record["change"]["reason"] == "TENSHUTSU" and record["moved_out_to"] is not None
    assert run("jumin.idou", "--event", "TENSHUTSU", "--seed", "3")[1] == out
    assert run("jumin.idou", "--event", "TENSHUTSU", "--seed", "4")[1] != out


def test_many_samples_are_written_as_numbered_files(tmp_path: Path) -> None:
    """-n with --out writes <kind>-<seq>.xml files, every one valid, of the asked group."""
    code, _, err = run("jumin.idou", "--event", "correction", "-n", "12", "--out", str(tmp_path))
    assert code == 0 and "wrote 12" in err
    files = sorted(tmp_path.glob("jumin.idou-*.xml"))
    assert [f.name for f in files][:2] == ["jumin.idou-000001.xml", "jumin.idou-000002.xml"]
    assert len(files) == 12
    for f in files:
        record = validate(f.read_bytes(), content_type="application/xml", catalog=CATALOG).record
        assert CATALOG.codelists.group(record["change"]["reason"]) == "correction"


def test_avro_and_other_kinds(tmp_path: Path) -> None:
    """--format avro writes Avro bodies that validate; projection and portal kinds work too."""
    for kind in ("jumin.idou", "kaigo.jumin", "chukan.fukuhon", "portal.oshirase", "portal.shinsei"):
        code, _, _ = run(kind, "-n", "3", "--format", "avro", "--out", str(tmp_path), "--seed", "9")
        assert code == 0
        files = sorted(tmp_path.glob(f"{kind}-*.avro"))
        assert len(files) == 3
        for f in files:
            validate(f.read_bytes(), content_type="application/avro", kind=kind, catalog=CATALOG)
    code, out, _ = run("koki.jumin", "--municipality", "472018", "--compact")
    assert code == 0 and out.count(b"\n") == 2  # the declaration, the document
    record = validate(out, content_type="application/xml", catalog=CATALOG).record
    assert record["municipality_code"] == "472018"


def test_usage_errors_say_what_is_expected() -> None:
    """Unknown kind or event, an event for a portal kind, or n > 1 without --out exit 2 with a reason."""
    code, _, err = run("jumin.idoo")
    assert code == 2 and "jumin.idou" in err
    code, _, err = run("jumin.idou", "--event", "MOVE")
    assert code == 2 and "TENNYU" in err and "increase" in err
    code, _, err = run("portal.shinsei", "--event", "TENNYU")
    assert code == 2 and "does not apply" in err
    code, _, err = run("jumin.idou", "-n", "2")
    assert code == 2 and "--out" in err
    code, _, err = run("jumin.idou", "--municipality", "123456")
    assert code == 2 and "131016" in err
