"""One contract every sink transport passes, each against its receiver.

The cases live in `SinkContract`; each transport subclasses it with a harness that knows
how to make its receiver unavailable, refusing, or gone (faststream's tests/brokers/base
is the model). HTTP runs against the simulator over a real uvicorn server on loopback;
the file drop against a directory and a reader of what was dropped.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from lxml import etree
from sink_contract_support import catalog, outbound

from adapters.simulators import SimulatorCluster
from adapters.transports.filedrop import FileDropSink
from adapters.transports.filedrop_format import CODECS
from adapters.transports.http import HttpSink
from bus.errors import PermanentError, TransientError
from bus.ports import Outbound, Sink


class SinkContract:
    """The cases. Subclasses provide the fixture `harness` (see HttpHarness, FileHarness)."""

    async def test_the_same_key_delivered_twice_has_one_effect(self, harness: Any) -> None:
        message = harness.message()
        first = await harness.sink.deliver(message)
        second = await harness.sink.deliver(message)
        assert (first.status, second.status) == ("applied", "duplicate")
        assert harness.effects() == 1

    async def test_the_receipt_names_the_destination_and_the_key(self, harness: Any) -> None:
        message = harness.message()
        receipt = await harness.sink.deliver(message)
        assert receipt.destination == message.envelope.destination
        assert receipt.idempotency_key == message.envelope.idempotency_key
        assert receipt.idempotency_key.endswith("." + message.envelope.destination)

    async def test_different_keys_each_have_their_effect(self, harness: Any) -> None:
        for _ in range(3):
            await harness.sink.deliver(harness.message())
        assert harness.effects() == 3

    async def test_an_unavailable_receiver_is_a_transient_error(self, harness: Any) -> None:
        await harness.make_unavailable()
        with pytest.raises(TransientError):
            await harness.sink.deliver(harness.message())
        assert harness.effects() == 0

    async def test_a_receiver_that_is_gone_is_a_transient_error(self, harness: Any) -> None:
        await harness.make_gone()
        with pytest.raises(TransientError):
            await harness.sink.deliver(harness.message())

    async def test_a_refused_message_is_a_permanent_error(self, harness: Any) -> None:
        message = await harness.make_refusing()
        with pytest.raises(PermanentError) as caught:
            await harness.sink.deliver(message)
        assert not isinstance(caught.value, TransientError)
        assert harness.effects() == 0

    async def test_a_retry_after_a_transient_failure_applies_once(self, harness: Any) -> None:
        message = harness.message()
        await harness.make_unavailable()
        with pytest.raises(TransientError):
            await harness.sink.deliver(message)
        await harness.restore()
        assert (await harness.sink.deliver(message)).status == "applied"
        assert (await harness.sink.deliver(message)).status == "duplicate"
        assert harness.effects() == 1

    async def test_errors_never_carry_the_message_content(self, harness: Any) -> None:
        message = await harness.make_refusing()
        with pytest.raises(PermanentError) as caught:
            await harness.sink.deliver(message)
        text = str(caught.value)
        for leaf in ("family_name", "given_name", "town", "banchi"):
            value = _find(message.record, leaf)
            if value:
                assert str(value) not in text


def _find(record: dict[str, Any], leaf: str) -> Any:
    for key, value in record.items():
        if key == leaf:
            return value
        if isinstance(value, dict):
            found = _find(value, leaf)
            if found is not None:
                return found
    return None


# -- HTTP against the simulator ----------------------------------------------------------


class HttpHarness:
    def __init__(self, cluster: SimulatorCluster, sink: HttpSink) -> None:
        self.cluster = cluster
        self.sink = sink
        self.state = cluster.state("zei")

    def message(self) -> Outbound:
        return outbound("zei.jumin", "zei")

    def effects(self) -> int:
        return self.state.effects

    async def make_unavailable(self) -> None:
        await _control(self.cluster, {"mode": "fail", "fail_status": 503})

    async def make_gone(self) -> None:
        await _control(self.cluster, {"mode": "down"})

    async def make_refusing(self) -> Outbound:
        await _control(self.cluster, {"mode": "reject"})
        return self.message()

    async def restore(self) -> None:
        await _control(self.cluster, {"mode": "ok"})


async def _control(cluster: SimulatorCluster, settings: dict[str, Any]) -> None:
    """Steer the simulator through its HTTP control endpoint, as a remote test would."""
    async with httpx.AsyncClient() as client:
        response = await client.post(cluster.url("zei") + "/control", json=settings)
        response.raise_for_status()


class HttpContract(SinkContract):
    body = "xml"
    batch_size = 1  # > 1: every delivery goes as a batch request (adapters.transports.httpbatch)
    http_client = "aiohttp"  # the default; "httpx": the fallback (adapters.transports.httpclient)

    @pytest.fixture
    async def harness(self) -> AsyncIterator[HttpHarness]:
        async with SimulatorCluster(["zei"], catalog=catalog()) as cluster:
            async with HttpSink(cluster.messages_url("zei"), body=self.body, timeout=5,  # type: ignore[arg-type]
                                batch_size=self.batch_size, http_client=self.http_client) as sink:
                yield HttpHarness(cluster, sink)

    async def test_a_closed_port_is_a_transient_error(self, harness: HttpHarness) -> None:
        await harness.cluster.take_down("zei")
        with pytest.raises(TransientError, match="connection failed"):
            await harness.sink.deliver(harness.message())
        await harness.cluster.bring_up("zei")
        assert (await harness.sink.deliver(harness.message())).status == "applied"

    async def test_the_simulator_validated_and_kept_the_body(self, harness: HttpHarness) -> None:
        message = harness.message()
        await harness.sink.deliver(message)
        held = harness.state.messages[message.envelope.idempotency_key]
        assert held.message_id == message.envelope.message_id
        assert held.subject == message.envelope.subject


class TestHttpSinkXml(HttpContract):
    body = "xml"


class TestHttpSinkJson(HttpContract):
    body = "json"


class TestHttpSinkBatchXml(HttpContract):
    body = "xml"
    batch_size = 10


class TestHttpSinkBatchJson(HttpContract):
    body = "json"
    batch_size = 10


class TestHttpSinkXmlOnHttpx(HttpContract):
    body = "xml"
    http_client = "httpx"


class TestHttpSinkBatchJsonOnHttpx(HttpContract):
    body = "json"
    batch_size = 10
    http_client = "httpx"


# -- file drop against a directory and a reader ------------------------------------------


class FileHarness:
    def __init__(self, root: Path, sink_options: dict[str, Any]) -> None:
        self.directory = root / "zei"
        self.options = sink_options
        self.sink: Sink = FileDropSink(self.directory, name="zei", **sink_options)

    def message(self) -> Outbound:
        return outbound("zei.jumin", "zei")

    def effects(self) -> int:
        """Files a reader would take, each parsed with the sink's format and encoding."""
        if not self.directory.is_dir():
            return 0
        files = [p for p in self.directory.iterdir() if p.is_file() and not p.name.startswith(".")]
        files = [p for p in files if not p.name.endswith(".json")]
        for path in files:
            _read(path, self.options.get("format", "xml"), self.options.get("encoding", "utf-8"))
        return len(files)

    async def make_unavailable(self) -> None:
        shutil.rmtree(self.directory)  # e.g. the share is not mounted

    async def make_gone(self) -> None:
        shutil.rmtree(self.directory)
        self.directory.write_bytes(b"")  # a file where the directory was: ENOTDIR

    async def make_refusing(self) -> Outbound:
        record = outbound("zei.jumin", "zei").record
        record = {**record, "name": {**record["name"], "family_name": "𠮷野"}}
        return outbound("zei.jumin", "zei", record=record)

    async def restore(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / ".renkei-delivered").mkdir(exist_ok=True)


def _read(path: Path, fmt: str, encoding: str) -> Any:
    data = path.read_bytes()
    if fmt == "xml":
        return etree.fromstring(data)
    text = data.decode(CODECS[encoding])  # jisx0208 is read as Shift_JIS
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert len(rows) == 2 and len(rows[0]) == len(rows[1])
        return rows
    assert text.endswith("\r\n") and text.count("\r\n") == 1
    return text


class FileContract(SinkContract):
    options: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def harness(self, tmp_path: Path) -> FileHarness:
        return FileHarness(tmp_path, {"unmappable": "reject", **self.options})


class TestFileDropEncodings(FileContract):
    """The file drop in each format and each encoding a receiver may take beside UTF-8."""

    @pytest.fixture(params=[(f, e) for e in ("cp932", "jisx0208") for f in ("xml", "csv", "fixed")],
                    ids=lambda p: f"{p[0]}-{p[1]}")
    def harness(self, tmp_path: Path, request: pytest.FixtureRequest) -> FileHarness:
        fmt, encoding = request.param
        return FileHarness(tmp_path, {"unmappable": "reject", "format": fmt, "encoding": encoding})
