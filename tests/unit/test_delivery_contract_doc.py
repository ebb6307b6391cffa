"""docs/delivery-contract.md says what the HTTP sink and the simulators do: checked here."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import namespace_validator, plain_outbound

from adapters.simulators import create_app
from adapters.transports.errors import TRANSIENT_STATUS, map_http_errors
from adapters.transports.http import HttpSink
from bus.cli import main
from bus.errors import PermanentError, TransientError

DOC = Path(__file__).resolve().parents[2] / "docs" / "delivery-contract.md"


def documented_headers() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Headers", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([A-Za-z-]+)` \|", section, flags=re.MULTILINE)


async def test_the_documented_headers_are_exactly_the_ones_the_http_sink_sends() -> None:
    sent: list[httpx.Headers] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers)
        return httpx.Response(200, json={"status": "applied"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(receiver))
    async with HttpSink("http://zei.test/messages", client=client) as sink:
        await sink.deliver(plain_outbound())
    await client.aclose()
    renkei_headers = {
        name.lower()
        for name in sent[0]
        if name.lower().startswith("x-renkei-") or name.lower() in ("idempotency-key", "content-type")
    }
    assert renkei_headers == {h.lower() for h in documented_headers()}


def test_the_documented_transient_statuses_are_the_ones_the_sink_retries() -> None:
    text = DOC.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| **408"))
    listed = {int(n) for n in re.findall(r"\b(4\d\d)\b", row)}
    assert listed == set(TRANSIENT_STATUS)


async def test_every_documented_answer_maps_to_the_documented_outcome() -> None:
    outcomes: dict[int, str] = {}
    for status in (200, 202, 400, 401, 404, 408, 409, 413, 422, 425, 429, 500, 503):
        request = httpx.Request("POST", "http://zei.test/messages")
        try:
            with map_http_errors("zei"):
                httpx.Response(status, request=request).raise_for_status()
            outcomes[status] = "ok"
        except TransientError:
            outcomes[status] = "retry"
        except PermanentError:
            outcomes[status] = "refused"
    assert outcomes == {200: "ok", 202: "ok", 400: "refused", 401: "refused", 404: "refused",
                        408: "retry", 409: "retry", 413: "refused", 422: "refused", 425: "retry",
                        429: "retry", 500: "retry", 503: "retry"}


async def test_the_simulator_requires_the_idempotency_key_the_doc_calls_required() -> None:
    assert "**required**" in DOC.read_text(encoding="utf-8")
    app = create_app("zei", validate=namespace_validator)
    message = plain_outbound()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zei") as client:
        response = await client.post("/messages", content=message.xml, headers={"Content-Type": "application/xml"})
    assert response.status_code == 400
    assert response.json()["issues"][0]["code"] == "S400"


def test_simulate_help_states_the_contract() -> None:
    result = CliRunner().invoke(main, ["simulate", "--help"])
    assert result.exit_code == 0
    for header in documented_headers():
        if header != "Content-Type":
            assert header in result.output
    assert "docs/delivery-contract.md" in result.output
    assert "dead-lettered" in result.output and "Retry-After" in result.output


def test_every_renkei_command_in_the_vendor_guide_parses() -> None:
    import shlex

    guide = (DOC.parent / "vendors.md").read_text(encoding="utf-8").replace("\\\n", " ")
    shown = re.findall(r"\.venv/bin/renkei ([^\n#&]+)", guide)
    assert len(shown) >= 7
    runner = CliRunner()
    for line in shown:
        words = shlex.split(line)
        path = [w for w in words if not w.startswith("-")][:2]
        result = runner.invoke(main, [*path, "--help"])
        if result.exit_code != 0:  # a command whose second word is an argument (renkei sample KIND)
            result = runner.invoke(main, [path[0], "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (line, result.output)
        options = {w.split("=")[0] for w in words if w.startswith("--")}
        assert all(option in result.output for option in options), (line, options)
