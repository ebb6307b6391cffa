"""docs/delivery-contract.md, Batches: its examples, the HTTP sink's batch requests and the
simulators' batch answers all fit docs/delivery-batch.schema.json; its settings and item
statuses are the sink's."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from sink_contract_support import namespace_validator, plain_outbound

from adapters.registry import sink_options
from adapters.simulators import create_app
from adapters.transports.http import HttpSink
from adapters.transports.httpbatch import ITEM_STATUSES

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA = json.loads((DOCS / "delivery-batch.schema.json").read_text(encoding="utf-8"))


def section() -> str:
    return (DOCS / "delivery-contract.md").read_text(encoding="utf-8").split("## Batches", 1)[1].split("\n## ", 1)[0]


def check(instance: Any, part: str) -> None:
    """Validate against `$defs/<part>` of the schema (its references resolved in the whole)."""
    jsonschema.validate(instance, {**SCHEMA, "oneOf": [{"$ref": f"#/$defs/{part}"}]},
                        cls=jsonschema.Draft202012Validator)


def test_the_schema_itself_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_the_documented_request_and_answer_fit_the_schema() -> None:
    request, answer = (json.loads(block) for block in re.findall(r"```json\n(.*?)```", section(), re.DOTALL))
    check(request, "request")
    check(answer, "answer")
    with pytest.raises(jsonschema.ValidationError):
        check({"items": [{**request["items"][0], "subject": "a 宛名番号"}]}, "request")


def test_the_documented_item_statuses_are_the_ones_the_sink_knows() -> None:
    table = section().split("| an item's `status`", 1)[1]
    documented = set(re.findall(r"^\| `([a-z]+)`(?:, `([a-z]+)`)?", table, re.MULTILINE))
    assert {s for pair in documented for s in pair if s} == set(ITEM_STATUSES)


def test_the_documented_settings_are_options_of_the_http_sink() -> None:
    toml = section().split("```toml", 1)[1].split("```", 1)[0]
    settings = set(re.findall(r"^(batch_\w+) =", toml, re.MULTILINE))
    options = sink_options("http")
    assert settings == {"batch_size", "batch_linger_ms"} and options is not None and settings <= options


@pytest.mark.parametrize("body", ["xml", "json"])
async def test_the_sinks_batch_requests_and_the_simulators_answers_fit_the_schema(body: str) -> None:
    app = create_app("zei", validate=namespace_validator)
    requests: list[httpx.Request] = []
    answers: list[httpx.Response] = []

    async def record(request: httpx.Request) -> None:
        requests.append(request)

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        answers.append(response)

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zei",
                               event_hooks={"request": [record], "response": [keep]})
    refused = plain_outbound()
    app.state.simulator.control(mode="reject", key=refused.envelope.idempotency_key)
    async with HttpSink("http://zei/messages", body=body, batch_size=10, client=client) as sink:  # type: ignore[arg-type]
        results = await sink.deliver_many([plain_outbound(), refused, plain_outbound()])
    await client.aclose()
    check(json.loads(requests[0].content), "request")
    check(answers[0].json(), "answer")
    statuses = [item["status"] for item in answers[0].json()["items"]]
    assert statuses == ["applied", "rejected", "applied"] and len(results) == 3
