"""The receiver conformance kit against the simulators (all pass) and broken variants of them
(each fails the check named for its defect), every one served by uvicorn on loopback."""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conformance_support import (
    Dispatch,
    accepts_everything,
    broken_app,
    no_idempotency,
    refuses_duplicates,
    refuses_long_values,
    refuses_whole_batches,
    reorders,
    server_error_for_bad_input,
    without_readback_or_control,
)
from processes import free_ports

from adapters.simulators import SYSTEMS, EmbeddedServer, SimulatorCluster, create_app
from bus.catalog import Catalog
from bus.conformance import ReceiverKit, ReceiverOptions, Report

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


async def run_kit(url: str, catalog: Catalog, system: str = "zei", **options: Any) -> Report:
    return await ReceiverKit(ReceiverOptions(system, url, **options), catalog).run()


async def test_every_simulator_in_the_suite_passes_the_receiver_kit(catalog: Catalog) -> None:
    async with SimulatorCluster(catalog=catalog) as cluster:
        for system in SYSTEMS:
            report = await run_kit(cluster.messages_url(system), catalog, system)
            assert report.passed, report.to_text()
            outcomes = {c.name: c.outcome for c in report.checks}
            assert outcomes.pop("batch_answers_item_by_item") == "not applicable"
            assert set(outcomes.values()) == {"passed"}, report.to_text()
            state = cluster.state(system)
            assert state.duplicates >= 2 and state.effects >= 8


@pytest.mark.parametrize("body", ["xml", "json"])
async def test_a_simulator_declared_to_take_batches_passes_the_batch_check(catalog: Catalog, body: str) -> None:
    async with SimulatorCluster(["zei"], catalog=catalog) as cluster:
        report = await run_kit(cluster.messages_url("zei"), catalog, batch=True, body=body)
        assert cluster.state("zei").batches == 2
    assert report.passed, report.to_text()
    check = report.check("batch_answers_item_by_item")
    evidence = "\n".join(check.evidence)
    assert check.outcome == "passed" and ": rejected [R" in evidence and ": duplicate" in evidence, evidence


async def test_a_receiver_refusing_a_whole_batch_for_one_item_fails_the_batch_check(catalog: Catalog) -> None:
    server = await serve_broken(refuses_whole_batches, catalog)
    try:
        report = await run_kit(server.url + "/messages", catalog, batch=True)
    finally:
        await server.stop()
    assert set(report.failed_names()) == {"batch_answers_item_by_item"}, report.to_text()
    assert "HTTP 422" in "\n".join(report.check("batch_answers_item_by_item").evidence)


async def test_the_valid_changes_cover_every_reason_group(catalog: Catalog) -> None:
    async with SimulatorCluster(["zei"], catalog=catalog) as cluster:
        report = await run_kit(cluster.messages_url("zei"), catalog)
    evidence = " ".join(report.check("valid_changes_applied").evidence)
    assert "TENNYU" in evidence and "TENSHUTSU" in evidence
    assert any(reason in evidence for reason in ("KEIBI_SHUSEI", "TENKYO", "SHIMEI_HENKO"))


async def serve_broken(dispatch: Dispatch, catalog: Catalog) -> EmbeddedServer:
    server = EmbeddedServer(broken_app("zei", dispatch, catalog))
    await server.start()
    return server


@pytest.mark.parametrize(
    ("defect", "failed"),
    [
        (no_idempotency, {"idempotency_key_honoured"}),
        (refuses_duplicates, {"idempotency_key_honoured"}),
        (server_error_for_bad_input, {"invalid_refused_for_good", "missing_key_refused"}),
        (reorders, {"per_resident_order"}),
        (refuses_long_values, {"boundary_values_applied"}),
    ],
    ids=["no-idempotency", "4xx-for-a-resend", "500-for-a-bad-body", "reorders", "narrow-columns"],
)
async def test_a_broken_receiver_fails_the_check_named_for_its_defect(
    defect: Dispatch, failed: set[str], catalog: Catalog
) -> None:
    server = await serve_broken(defect, catalog)
    try:
        report = await run_kit(server.url + "/messages", catalog)
    finally:
        await server.stop()
    assert not report.passed
    assert set(report.failed_names()) == failed, report.to_text()
    for name in failed:
        assert any(e.startswith("FAIL: ") for e in report.check(name).evidence)


async def test_a_receiver_that_applies_malformed_bodies_fails_the_refusal_check(catalog: Catalog) -> None:
    server = EmbeddedServer(create_app("zei", validate=accepts_everything, catalog=catalog))
    await server.start()
    try:
        report = await run_kit(server.url + "/messages", catalog)
    finally:
        await server.stop()
    assert set(report.failed_names()) == {"invalid_refused_for_good"}, report.to_text()
    assert "had 1 effect(s), wanted 0" in "\n".join(report.check("invalid_refused_for_good").evidence)


async def test_a_receiver_slower_than_the_timeout_fails_the_timeout_check(catalog: Catalog) -> None:
    async with SimulatorCluster(["zei"], catalog=catalog) as cluster:
        cluster.state("zei").control(mode="slow", delay=1.0, count=1)
        report = await run_kit(cluster.messages_url("zei"), catalog, timeout=0.4)
    assert "answers_within_timeout" in report.failed_names()
    assert "timed out" in "\n".join(report.check("answers_within_timeout").evidence)


async def test_without_a_read_back_or_control_endpoint_those_checks_say_not_applicable(catalog: Catalog) -> None:
    server = await serve_broken(without_readback_or_control, catalog)
    try:
        report = await run_kit(server.url + "/messages", catalog)
    finally:
        await server.stop()
    assert report.passed, report.to_text()
    outcomes = {c.name: c.outcome for c in report.checks}
    assert outcomes["per_resident_order"] == outcomes["failure_has_no_effect"] == "not applicable"
    assert outcomes["idempotency_key_honoured"] == "passed"
    assert "effects not counted" in "\n".join(report.check("idempotency_key_honoured").evidence)


async def test_an_applied_keys_file_is_read_back_instead_of_the_endpoint(catalog: Catalog, tmp_path: Path) -> None:
    keys = tmp_path / "applied.txt"
    keys.write_text("")
    async with SimulatorCluster(["zei"], catalog=catalog) as cluster:
        report = await run_kit(cluster.messages_url("zei"), catalog, applied_keys=keys, settle=0.5)
    # the file stays empty while the simulator applies: the kit finds no effect and says where it looked
    assert "valid_changes_applied" in report.failed_names()
    assert f"read back from {keys}" in "\n".join(report.check("valid_changes_applied").evidence)


def test_the_report_is_junit_xml_and_html_with_each_check_and_its_evidence(catalog: Catalog) -> None:
    from bus.conformance import Check

    report = Report("receiver", "zei", "http://127.0.0.1:1/messages")
    report.checks = [Check("a_rule", "a rule"), Check("b_rule", "b rule"), Check("c_rule", "c rule")]
    report.checks[1].fail("HTTP 500 → retry <script>")
    report.checks[2].not_applicable("no batches")
    suite = ET.fromstring(report.to_junit())
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    failure = suite.find("testcase[@name='b_rule']/failure")
    assert failure is not None and "HTTP 500" in (failure.text or "")
    page = report.to_html()
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "FAILED: 1 passed, 1 failed, 1 not applicable" in page


@pytest.fixture
def simulator_process() -> Iterator[str]:
    (port,) = free_ports(1)
    renkei = str(Path(sys.executable).with_name("renkei"))
    process = subprocess.Popen([renkei, "simulate", "zei", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_cli_writes_a_passing_report_against_renkei_simulate(simulator_process: str, tmp_path: Path) -> None:
    renkei = str(Path(sys.executable).with_name("renkei"))
    junit, page = tmp_path / "report.xml", tmp_path / "report.html"
    result = subprocess.run(
        [renkei, "conformance", "receiver", "--system", "zei", "--url", simulator_process + "/messages",
         "--batch", "--junit", str(junit), "--html", str(page)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[PASS] idempotency_key_honoured" in result.stdout
    assert "[PASS] batch_answers_item_by_item" in result.stdout
    assert ET.fromstring(junit.read_bytes()).get("failures") == "0"
    assert "PASSED" in page.read_text(encoding="utf-8")


def test_the_cli_exits_1_and_names_the_failed_check(simulator_process: str) -> None:
    httpx.post(simulator_process + "/control", json={"mode": "reject"}).raise_for_status()
    renkei = str(Path(sys.executable).with_name("renkei"))
    result = subprocess.run(
        [renkei, "conformance", "receiver", "--system", "zei", "--url", simulator_process + "/messages"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[FAIL] valid_changes_applied" in result.stdout
    assert "FAILED" in result.stdout.splitlines()[-1]


async def test_the_kit_sends_json_bodies_as_a_json_destination_would(catalog: Catalog) -> None:
    async with SimulatorCluster(["kokuho"], catalog=catalog) as cluster:
        report = await run_kit(cluster.messages_url("kokuho"), catalog, "kokuho", body="json")
        held = list(cluster.state("kokuho").messages.values())
    assert report.passed, report.to_text()
    assert held and {m.content_type for m in held} == {"application/json"}
