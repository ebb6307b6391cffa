"""`renkei ingest`'s output: a bar on a terminal, plain lines with rate and ETA elsewhere, and a
summary naming each rejected record's code, field and row, never a value."""

from __future__ import annotations

import io

from bus.cli.ingest import _Shown, progress_line, summary_lines
from bus.status import IngestProgress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(done: int) -> IngestProgress:
    return IngestProgress("f.avro", "s", "avro", "jumin.idou", "d", 1000, done=done, accepted=done,
                          started=100.0, updated=110.0)


def test_a_plain_line_has_the_count_the_rate_and_the_eta() -> None:
    assert progress_line("ingesting f.avro", _progress(400)) == (
        "ingesting f.avro: 400/1000 records, 40/s, ETA 0:00:15; accepted 400, duplicate 0, rejected 0")


def test_off_a_terminal_lines_come_every_few_seconds_and_once_at_the_end() -> None:
    out = io.StringIO()
    with _Shown("ingesting f.avro", 1000, out, every=3600) as shown:
        for done in (100, 200, 300):
            shown.update(_progress(done))
    assert out.getvalue().splitlines() == [progress_line("ingesting f.avro", _progress(300))]


def test_on_a_terminal_it_is_a_bar_with_the_count() -> None:
    out = _Terminal()
    with _Shown("ingesting f.avro", 1000, out, every=1) as shown:
        shown.update(_progress(1000))
    assert "ingesting f.avro" in out.getvalue() and "1000/1000" in out.getvalue()


def test_the_summary_lists_rejections_by_code_and_field_with_their_rows() -> None:
    result = {"file": "c.csv", "format": "csv", "kind": "jumin.idou", "source": "s", "records": 40, "seconds": 2.0,
              "records_per_second": 20.0, "resumed_from": 10, "counts": {"accepted": 25, "duplicate": 3,
                                                                         "rejected": 12},
              "rejected": [{"code": "R401", "field": "/x/personal_number", "count": 12, "rows": list(range(2, 14)),
                            "message": "個人番号 (personal_number) check digit is wrong"}]}
    lines = summary_lines(result)
    assert lines[0].startswith("renkei ingest: c.csv (csv, jumin.idou, source s): 40 records") and "resumed" in lines[0]
    assert lines[1] == "  accepted 25, duplicate 3, rejected 12"
    assert lines[2] == ("  rejected R401 at /x/personal_number: 12 (rows 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, …): "
                        "個人番号 (personal_number) check digit is wrong")
