"""The pipeline benchmark runs end to end on a tiny workload (no timing is asserted)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.pipeline import FANOUT, TARGET, Options, run

pytestmark = pytest.mark.amqp

N = 50


async def test_both_sides_process_every_message_and_the_result_file_has_the_figures(
    amqp_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results" / "pipeline.json"
    returned = await run(Options(amqp_url, messages=N, rounds=1, out=out))

    result = json.loads(out.read_text(encoding="utf-8"))
    assert result == returned
    assert result["messages"] == N
    assert result["outputs_per_message"] == FANOUT
    assert result["target"] == TARGET
    assert isinstance(result["passed"], bool)
    assert result["ratio"] > 0 and result["cpu_ratio"] > 0
    for side in ("reference", "renkei"):
        assert result[side]["messages_per_s"] > 0
        assert result[side]["cpu_ms_per_message"] > 0
    for key in ("timestamp", "comparability", "measured", "machine", "settings", "destinations"):
        assert result[key]
    assert re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", result["commit"])  # what it measured (bench/README.md)
    assert result["machine"]["rabbitmq"]
    [round_] = result["rounds"]
    for side in ("reference", "renkei"):
        assert round_[side]["processed"] == N
        assert round_[side]["outputs"] == N * FANOUT
        assert round_[side]["input_left"] == 0

    printed = capsys.readouterr().out
    assert "ratio renkei/reference" in printed
    digit_run = re.compile(r"(?<![0-9a-f])\d{8,15}(?![0-9a-f])")  # as bus.logs masks them; ids are hex
    for text in (printed, out.read_text(encoding="utf-8")):  # no 宛名番号 / 個人番号 / 住民票コード
        assert not digit_run.search(text)
