"""`renkei demo` as a newcomer runs it: one command, nothing else installed, a summary a
person can read, and an exit status that tells whether every delivery was right."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from adapters.simulators.state import read_received
from bus.cli.demo import render
from bus.demo import DemoOptions, DemoResult, DestinationTally


def test_the_demo_delivers_to_every_system_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "bus.cli", "demo", "--changes", "120", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for destination in ("zei", "kokuho", "kaigo", "koki", "nenkin", "fukushi", "chukan", "portal",
                        "togo_oshirase", "senkyo", "shugaku", "fukushi_shinsei", "kaigo_shinsei", "jumin_shinsei"):
        row = next(line for line in lines if line.startswith(destination + " "))
        expected, delivered = (int(n) for n in row.split()[1:3])
        assert expected == delivered > 0, row
        assert len(read_received(out / "received" / destination)) == delivered  # one line per message received
    zei = next(line for line in lines if line.startswith("zei "))
    # the tax system gets every change, and every 支援措置 set, extended or released without a 異動
    shien = next(line for line in lines if line.startswith("支援措置 without a 異動 (jumin.shien): "))
    measures = int(shien.split(": ")[1].split()[0])
    assert measures > 0 and "SETTEI" in shien, shien
    assert zei.split()[1:3] == [str(120 + measures)] * 2
    for destination in ("kaigo", "koki", "shugaku", "togo"):  # whatever their residents' ages: all of them
        assert len(read_received(out / "received" / destination)) >= measures
    chukan = read_received(out / "received" / "chukan")
    assert chukan and not any(b"SupportMeasure" in body for _, body in chukan)
    assert "0 carried a 個人番号" in done.stdout
    # the ぴったりサービス batch: every application taken, each to the system of its 手続 (rows above)
    assert "ぴったりサービス (source 'pittari'): one batch of 9 applications — accepted 9," in done.stdout
    assert lines[-1].startswith("OK: every expected delivery happened")
    assert (out / "renkei.log").stat().st_size > 0
    # batch delivery by default: fewer requests than deliveries, every one of them a batch
    delivery = next(line for line in lines if line.startswith("delivery: in batches of up to 100 changes"))
    requests, batches, deliveries = (int(n) for n in re.findall(r"(\d+) (?:requests|batches|deliveries)", delivery))
    assert 0 < batches == requests < deliveries, delivery
    # the simulators ran in a process of their own (the default), their CPU told apart
    assert re.fullmatch(r"simulators: in a process of their own, \d+\.\d s CPU", next(
        line for line in lines if line.startswith("simulators: ")))


def demo_lines(tmp_path: Path, *options: str) -> list[str]:
    """`renkei demo OPTIONS` run as a user runs it; its summary's lines (it must exit 0)."""
    done = subprocess.run([sys.executable, "-m", "bus.cli", "demo", *options, "--out", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def test_the_demo_sends_one_request_per_change_when_told_batch_size_1(tmp_path: Path) -> None:
    lines = demo_lines(tmp_path, "--changes", "40", "--batch-size", "1")
    delivery = next(line for line in lines if line.startswith("delivery: one request per change"))
    requests, batches, deliveries = (int(n) for n in re.findall(r"(\d+) (?:requests|batches|deliveries)", delivery))
    assert batches == 0 and 0 < requests <= deliveries, delivery  # togo forwards what it sends on itself
    assert lines[-1].startswith("OK: every expected delivery happened")


def test_the_demo_runs_the_simulators_in_its_own_process_when_told(tmp_path: Path) -> None:
    lines = demo_lines(tmp_path, "--changes", "40", "--simulators", "in-process")
    assert "simulators: in the bus's process" in lines
    expected, delivered = next(line for line in lines if line.startswith("zei ")).split()[1:3]
    assert expected == delivered and int(delivered) >= 40  # every change (and any 支援措置 after one)
    assert lines[-1].startswith("OK: every expected delivery happened")


def test_the_demo_feeds_jumin_idou_v2_through_the_bus_when_asked(tmp_path: Path) -> None:
    lines = demo_lines(tmp_path, "--changes", "300", "--feed-version", "2")
    distinct = next(line for line in lines if line.startswith("jumin.idou v2:"))
    assert int(distinct.split()[2]) >= 20  # every one of the 38 in tests/unit/test_demo_feed_v2.py (3000 changes)
    shien = next(line for line in lines if line.startswith("支援措置 without a 異動 (jumin.shien): "))
    changes = str(300 + int(shien.split(": ")[1].split()[0]))
    assert next(line for line in lines if line.startswith("zei ")).split()[1:3] == [changes, changes]
    assert lines[-1].startswith("OK: every expected delivery happened")


def test_a_missing_delivery_fails_the_demo_and_is_pointed_out() -> None:
    result = DemoResult(DemoOptions(changes=3))
    result.fed = 3
    result.answers.update(accepted=3)
    result.destinations = [
        DestinationTally("zei", "個人住民税", expected=3, delivered=3),
        DestinationTally("kaigo", "介護保険", expected=2, delivered=1, missing=1),
    ]
    assert not result.ok
    text = render(result)
    assert "MISSING 1" in text
    assert text.splitlines()[-1].startswith("FAILED")


def test_a_personal_number_at_the_intermediate_server_fails_the_demo() -> None:
    result = DemoResult(DemoOptions(changes=1))
    result.destinations = [DestinationTally("chukan", "中間サーバー", expected=1, delivered=1, personal_numbers=1)]
    assert not result.ok
    assert "1 CARRIED A 個人番号" in render(result)


def test_a_wrong_answer_to_the_source_fails_the_demo() -> None:
    result = DemoResult(DemoOptions(changes=1))
    result.wrong_answers.append("expected R401, got accepted")
    assert not result.ok
    assert "wrong answer: expected R401, got accepted" in render(result)
