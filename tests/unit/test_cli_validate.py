"""`renkei validate`: human and JSON output, exit codes, content-type sniffing, size cap."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bus.cli import main
from bus.paths import schemas_dir

SAMPLES = schemas_dir() / "jumin.idou" / "1" / "samples"
VALID_XML = SAMPLES / "valid" / "tennyu.xml"
VALID_AVRO = SAMPLES / "valid" / "tennyu.avro"
INVALID_XML = SAMPLES / "invalid" / "r300_unknown_reason.xml"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["validate", *args])


def test_a_valid_file_prints_its_kind_and_exits_0() -> None:
    """FILE: valid (kind vN), exit status 0."""
    result = run(str(VALID_XML))
    assert result.exit_code == 0, result.output
    assert result.output == f"{VALID_XML}: valid (jumin.idou v1)\n"


def test_an_invalid_file_prints_file_line_column_code_path_and_exits_1() -> None:
    """FILE:LINE:COL: CODE path: message (value …, expected …), exit status 1."""
    result = run(str(INVALID_XML))
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith(f"{INVALID_XML}:13:5: R300 /ResidentChange/change/reason: ")
    assert re.search(r"\(value HIKKOSHI, expected one of: TENNYU, .*TORIKESHI\)$", line)


def test_rule_issues_print_file_line_column_code_path_as_schema_errors_do() -> None:
    """Rule issues name their element's line and column too: FILE:LINE:COL: CODE path: message (…)."""
    path = SAMPLES / "invalid" / "r402_municipality_check_digit.xml"
    result = run(str(path))
    assert result.exit_code == 1
    assert result.output.startswith(f"{path}:5:3: R402 /ResidentChange/municipality_code: ")
    assert "(value 131017, expected 6 digits with a valid check digit)" in result.output


def test_several_files_report_each_and_exit_1_if_any_is_invalid() -> None:
    """Every file gets its result; one invalid file makes the exit status 1."""
    result = run(str(VALID_XML), str(INVALID_XML))
    assert result.exit_code == 1
    assert f"{VALID_XML}: valid (jumin.idou v1)" in result.output
    assert f"{INVALID_XML}:13:5: R300" in result.output


def test_json_output_has_a_result_per_file() -> None:
    """--json prints one document: overall validity and per-file kind and issues."""
    result = run("--json", str(VALID_XML), str(INVALID_XML))
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["valid"] is False
    first, second = doc["files"]
    assert first == {"file": str(VALID_XML), "valid": True, "content_type": "application/xml",
                     "kind": "jumin.idou", "version": 1, "issues": []}
    assert second["valid"] is False
    assert second["issues"][0]["code"] == "R300"
    assert second["issues"][0]["line"] == 13
    assert second["issues"][0]["path"] == "/ResidentChange/change/reason"


def test_avro_needs_kind() -> None:
    """An Avro body names no schema: without --kind it is a usage error (2); with it, valid (0)."""
    assert run(str(VALID_AVRO)).exit_code == 2
    result = run("--kind", "jumin.idou", str(VALID_AVRO))
    assert result.exit_code == 0, result.output
    assert "valid (jumin.idou v1)" in result.output


def test_usage_errors_exit_2() -> None:
    """A missing file or an unknown kind is a usage error."""
    assert run("/no/such/file.xml").exit_code == 2
    result = run("--kind", "no.such", str(VALID_XML))
    assert result.exit_code == 2
    assert "unknown kind" in result.output
    assert run().exit_code == 2


def test_kind_must_match_the_file() -> None:
    """--kind another kind: the file is invalid (R220), not a usage error."""
    result = run("--kind", "zei.jumin", str(VALID_XML))
    assert result.exit_code == 1
    assert "R220" in result.output


def test_content_type_is_sniffed_without_an_extension(tmp_path: Path) -> None:
    """A file named without .xml/.avro is XML when it starts with '<', Avro with --kind otherwise."""
    xml = tmp_path / "message"
    xml.write_bytes(VALID_XML.read_bytes())
    assert run(str(xml)).exit_code == 0
    body = tmp_path / "body.bin"
    body.write_bytes(VALID_AVRO.read_bytes())
    assert run("--kind", "jumin.idou", str(body)).exit_code == 0
    result = run(str(body))
    assert result.exit_code == 1
    assert "R220" in result.output


def test_max_size_rejects_bigger_files_without_reading_them_whole(tmp_path: Path) -> None:
    """--max-size: a larger file is R100 and names its real size."""
    big = tmp_path / "big.xml"
    big.write_bytes(VALID_XML.read_bytes() + b"<!--" + b"x" * 5000 + b"-->")
    result = run("--max-size", "1000", str(big))
    assert result.exit_code == 1
    assert f"R100 /: file is {big.stat().st_size} bytes" in result.output
    assert run("--max-size", "0", str(big)).exit_code == 2


@pytest.mark.parametrize(
    "content", [b"", b"\x00\x01\x02", b"<", "<a>\udcff</a>".encode("utf-8", "surrogatepass")]
)
def test_broken_files_are_invalid_never_a_traceback(content: bytes, tmp_path: Path) -> None:
    """Empty, binary, cut-off and undecodable files are reported as invalid (exit 1)."""
    path = tmp_path / "broken.xml"
    path.write_bytes(content)
    result = run(str(path))
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert re.search(r": R2\d\d ", result.output)
