"""The in-process SimulatorCluster (real uvicorn servers, real validator) and `renkei simulate`."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import SCHEMAS, catalog, outbound, sample_record

from adapters.simulators import SYSTEMS, SimulatorCluster
from adapters.transports.http import HttpSink
from bus.cli.simulate import simulate
from bus.errors import ConfigError, PermanentError

needs_catalog = pytest.mark.skipif(catalog() is None, reason="the schema catalog is not loadable here")


async def test_every_simulator_runs_on_its_own_loopback_port() -> None:
    async with SimulatorCluster() as sims:
        assert set(sims.urls) == set(SYSTEMS)
        assert len({url for url in sims.urls.values()}) == len(SYSTEMS)
        async with httpx.AsyncClient() as client:
            for system, url in sims.urls.items():
                assert url.startswith("http://127.0.0.1:")
                health = (await client.get(url + "/healthz")).json()
                assert health == {"status": "ok", "system": system, "kind": SYSTEMS[system].kind}


@needs_catalog
@pytest.mark.parametrize("system", sorted(SYSTEMS))
async def test_each_simulator_accepts_the_valid_samples_of_its_kind(system: str) -> None:
    kind = SYSTEMS[system].kind
    names = [p.stem for p in sorted((SCHEMAS / kind / "1" / "samples" / "valid").glob("*.xml"))]
    async with SimulatorCluster([system], catalog=catalog()) as sims:
        async with HttpSink(sims.messages_url(system)) as sink:
            for name in names:
                receipt = await sink.deliver(outbound(kind, system, record=sample_record(kind, name)))
                assert receipt.status == "applied"
        assert sims.state(system).effects == len(names) > 0


@needs_catalog
async def test_a_simulator_rejects_a_message_its_schema_refuses() -> None:
    record = sample_record("zei.jumin")
    record["municipality_code"] = "131017"  # wrong check digit
    async with SimulatorCluster(["zei"], catalog=catalog()) as sims:
        async with HttpSink(sims.messages_url("zei")) as sink:
            with pytest.raises(PermanentError, match="R402"):
                await sink.deliver(outbound("zei.jumin", "zei", record=record))
        assert sims.state("zei").rejected == 1


@needs_catalog
async def test_the_intermediate_server_never_takes_a_personal_number() -> None:
    record = sample_record("chukan.fukuhon")
    sneaky = outbound("chukan.fukuhon", "chukan", record=record)
    ns = b'xmlns="urn:renkei:schema:chukan.fukuhon:1">'
    xml = sneaky.xml.replace(ns, ns + b"<personal_number>123456789018</personal_number>")
    async with SimulatorCluster(["chukan"], catalog=catalog()) as sims:
        async with httpx.AsyncClient() as client:
            headers = {"Idempotency-Key": "k1.chukan", "Content-Type": "application/xml"}
            response = await client.post(sims.messages_url("chukan"), content=xml, headers=headers)
        assert response.status_code == 422 and response.json()["issues"][0]["code"] == "S401"
        assert sims.state("chukan").effects == 0


async def test_a_simulator_taken_down_refuses_connections_until_brought_up() -> None:
    async with SimulatorCluster(["kaigo"]) as sims:
        url = sims.url("kaigo")
        await sims.take_down("kaigo")
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url + "/healthz")
            await sims.bring_up("kaigo")
            assert sims.url("kaigo") == url
            assert (await client.get(url + "/healthz")).status_code == 200


async def test_the_state_is_shared_with_the_server_and_can_be_waited_on() -> None:
    async with SimulatorCluster(["nenkin"], catalog=catalog()) as sims:
        async with HttpSink(sims.messages_url("nenkin")) as sink:
            delivery = asyncio.create_task(sink.deliver(outbound("nenkin.jumin", "nenkin")))
            await sims.state("nenkin").wait_for(1, within=5)
            await delivery
        sims.reset()
        assert sims.state("nenkin").counts()["effects"] == 0


def test_an_unknown_system_is_refused() -> None:
    with pytest.raises(ConfigError, match="gas"):
        SimulatorCluster(["zei", "gas"])


def test_renkei_simulate_lists_the_systems_in_its_help() -> None:
    result = CliRunner().invoke(simulate, ["--help"])
    assert result.exit_code == 0 and "--port" in result.output and "chukan" in result.output
    assert CliRunner().invoke(simulate, ["gas", "--port", "1"]).exit_code != 0


async def test_renkei_simulate_serves_one_system(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from bus.cli.simulate import simulate; simulate()",
        "koki",
        "--port",
        str(port),
        "--store",
        str(tmp_path / "koki"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    health = await client.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("renkei simulate did not start")
        assert health.json()["kind"] == "koki.jumin"
    finally:
        process.terminate()
        await process.wait()


def test_a_mistyped_http_parser_is_a_usage_error_not_a_traceback() -> None:
    result = CliRunner().invoke(simulate, ["zei", "--port", "18999"], env={"RENKEI_HTTP_PARSER": "llhttp"})
    assert result.exit_code == 2, result.output
    assert "RENKEI_HTTP_PARSER must be one of httptools, h11, got 'llhttp'" in result.output
    assert "Traceback" not in result.output
