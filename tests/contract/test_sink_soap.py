"""The sink contract (test_sinks.SinkContract) for the SOAP 1.1 transport, against the SOAP
simulator over a real uvicorn server on loopback; then what only SOAP has: WS-Security
UsernameToken checked (a wrong password is refused for good, a replayed token too) and the
WSDL generated from the kind's XSD, describing exactly what the sink sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from sink_contract_support import catalog, outbound
from test_sinks import SinkContract

from adapters.registry import build_sink
from adapters.simulators import EmbeddedServer
from adapters.simulators.soap import SoapSimulator
from adapters.transports.soap import RENKEI_SOAP_NS, SoapSink
from adapters.transports.soap_wsdl import renkei_soap_schema, wsdl
from adapters.transports.wssecurity import SOAP_NS
from bus.errors import ConfigError, PermanentError
from bus.ports import Outbound

USER, PASSWORD = "renkei", "s3cret-for-tests"


class SoapHarness:
    def __init__(self, simulator: SoapSimulator, server: EmbeddedServer, sink: SoapSink) -> None:
        self.simulator = simulator
        self.server = server
        self.sink = sink
        self.state = simulator.state

    def message(self) -> Outbound:
        return outbound("zei.jumin", "zei")

    def effects(self) -> int:
        return self.state.effects

    async def _control(self, settings: dict[str, Any]) -> None:
        async with httpx.AsyncClient() as client:  # through the simulator's own control endpoint
            (await client.post(self.server.url + "/control", json=settings)).raise_for_status()

    async def make_unavailable(self) -> None:
        await self._control({"mode": "fail", "fail_status": 503})

    async def make_gone(self) -> None:
        await self._control({"mode": "down"})

    async def make_refusing(self) -> Outbound:
        await self._control({"mode": "reject"})
        return self.message()

    async def restore(self) -> None:
        await self._control({"mode": "ok"})


@pytest.fixture
async def soap_server() -> AsyncIterator[tuple[SoapSimulator, EmbeddedServer]]:
    simulator = SoapSimulator("zei", username=USER, password=PASSWORD, catalog=catalog())
    server = EmbeddedServer(simulator)
    await server.start()
    try:
        yield simulator, server
    finally:
        await server.stop()
        await simulator.aclose()


class TestSoapSink(SinkContract):
    @pytest.fixture
    async def harness(self, soap_server: tuple[SoapSimulator, EmbeddedServer]) -> AsyncIterator[SoapHarness]:
        simulator, server = soap_server
        async with SoapSink(server.url + "/soap", USER, password=PASSWORD, timeout=5, name="zei") as sink:
            yield SoapHarness(simulator, server, sink)

    async def test_the_simulator_validated_and_kept_the_body(self, harness: SoapHarness) -> None:
        message = harness.message()
        receipt = await harness.sink.deliver(message)
        held = harness.state.messages[message.envelope.idempotency_key]
        assert (held.message_id, held.subject, held.sequence) == (
            message.envelope.message_id, message.envelope.subject, message.envelope.sequence)
        assert receipt.reference == held.reference


async def test_a_wrong_password_is_refused_for_good(soap_server: tuple[SoapSimulator, EmbeddedServer],
                                                    tmp_path: Path) -> None:
    simulator, server = soap_server
    secret = tmp_path / "password"
    secret.write_text("not-the-password\n")
    sink = build_sink("soap", {"url": server.url + "/soap", "username": USER, "password_file": str(secret),
                               "destination": "zei"})
    assert isinstance(sink, SoapSink)
    async with sink:
        with pytest.raises(PermanentError, match=r"soap:Client \[S403\]") as refused:
            await sink.deliver(outbound("zei.jumin", "zei"))
    assert "not-the-password" not in str(refused.value)
    assert simulator.state.effects == 0


async def test_a_replayed_token_is_refused(soap_server: tuple[SoapSimulator, EmbeddedServer]) -> None:
    _, server = soap_server
    async with SoapSink(server.url + "/soap", USER, password=PASSWORD) as sink:
        envelope = sink.envelope(outbound("zei.jumin", "zei"))
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    async with httpx.AsyncClient() as client:
        first = await client.post(server.url + "/soap", content=envelope, headers=headers)
        again = await client.post(server.url + "/soap", content=envelope, headers=headers)
    assert first.status_code == 200 and b"applied" in first.content
    assert again.status_code == 500 and b"used before" in again.content


def test_the_digest_token_never_carries_the_password() -> None:
    sink = SoapSink("http://zei.test/soap", USER, password=PASSWORD)
    assert PASSWORD.encode() not in sink.envelope(outbound("zei.jumin", "zei"))
    with pytest.raises(ConfigError, match="only over https"):
        SoapSink("http://zei.test/soap", USER, password=PASSWORD, password_type="PasswordText")


@pytest.mark.parametrize("kind", ["zei.jumin", "kokuho.jumin", "chukan.fukuhon", "portal.oshirase"])
def test_the_wsdl_generated_from_the_xsd_describes_what_the_sink_sends(kind: str, tmp_path: Path) -> None:
    cat = catalog()
    ks = cat.get(kind)
    document = etree.fromstring(wsdl(ks, "https://vendor.test/soap"))
    wsdl_ns = "http://schemas.xmlsoap.org/wsdl/"
    schemas = document.findall(f"{{{wsdl_ns}}}types/{{http://www.w3.org/2001/XMLSchema}}schema")
    assert [s.get("targetNamespace") for s in schemas] == [ks.namespace, RENKEI_SOAP_NS]
    address = document.find(f".//{{{wsdl_ns}}}port/{{http://schemas.xmlsoap.org/wsdl/soap/}}address")
    assert address is not None and address.get("location") == "https://vendor.test/soap"
    # the request the sink makes is valid against the WSDL's own types
    (tmp_path / "kind.xsd").write_bytes(etree.tostring(schemas[0]))
    rk = renkei_soap_schema(ks)
    rk.find("{http://www.w3.org/2001/XMLSchema}import").set("schemaLocation", str(tmp_path / "kind.xsd"))
    validator = etree.XMLSchema(rk)
    from bus.synthetic.samples import sample_records

    record = next(iter(sample_records(kind, cat, seed=1, n=1)))
    message = Outbound(outbound(kind, "x", record=record).envelope, record, ks.to_xml(record))
    sent = etree.fromstring(SoapSink("http://x.test/soap", USER, password=PASSWORD).envelope(message))
    for element in ("Header/{%s}Delivery", "Body/{%s}Deliver"):
        part = sent.find(f"{{{SOAP_NS}}}" + element % RENKEI_SOAP_NS)
        assert part is not None
        validator.assertValid(part)


async def test_the_simulator_serves_the_wsdl(soap_server: tuple[SoapSimulator, EmbeddedServer]) -> None:
    _, server = soap_server
    async with httpx.AsyncClient() as client:
        response = await client.get(server.url + "/soap?wsdl")
    assert response.status_code == 200
    document = etree.fromstring(response.content)
    address = document.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address is not None and address.get("location") == server.url + "/soap"


def test_renkei_conformance_wsdl_writes_the_wsdl_of_a_kind(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bus.cli import main

    out = tmp_path / "zei.wsdl"
    result = CliRunner().invoke(main, ["conformance", "wsdl", "zei.jumin", "--location", "https://v.test/soap",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert etree.fromstring(out.read_bytes()).get("name") == "RenkeiZeiJuminReceiver"
    unknown = CliRunner().invoke(main, ["conformance", "wsdl", "zei.juminn", "--location", "https://v.test/soap"])
    assert unknown.exit_code == 2 and "unknown kind 'zei.juminn'" in unknown.output


async def test_renkei_simulate_takes_soap_with_a_soap_user(tmp_path: Path) -> None:
    import asyncio
    import sys

    from processes import free_ports

    (port,) = free_ports(1)
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    renkei = str(Path(sys.executable).with_name("renkei"))
    process = await asyncio.create_subprocess_exec(
        renkei, "simulate", "zei", "--port", str(port), "--soap-user", USER, "--soap-password-file", str(secret),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        async with SoapSink(f"http://127.0.0.1:{port}/soap", USER, password=PASSWORD) as sink:
            message = outbound("zei.jumin", "zei")
            assert (await sink.deliver(message)).status == "applied"
            assert (await sink.deliver(message)).status == "duplicate"
    finally:
        process.terminate()
        await process.wait()
