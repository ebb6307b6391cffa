"""A message the HTTP intake cannot take (415: not XML or Avro; 413: too large) is a rejection
of its source, counted where `renkei status` reads it (the audit event: tests/hostile)."""

from __future__ import annotations

from pathlib import Path

import httpx
from pipeline_support import KEY, CapturingBroker

from adapters.sources.http_intake import create_intake_app
from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.stages import IntakeStage
from bus.stages.hooks import CountingHooks
from bus.state import StateStore
from bus.status import source_statuses


async def test_a_415_and_a_413_are_counted_as_rejections_of_their_source(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite")
    intake = IntakeStage(CapturingBroker(), Catalog.load(), state, Pseudonymizer(KEY),  # type: ignore[arg-type]
                         hooks=CountingHooks(state))
    app = create_intake_app(intake, max_body=10)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bus") as client:
        json = await client.post("/v1/messages", content=b"{}",
                                 headers={"Content-Type": "application/json", "X-Renkei-Source": "kiban"})
        large = await client.post("/v1/messages", content=b"x" * 11,
                                  headers={"Content-Type": "application/xml", "X-Renkei-Source": "kiban"})
    assert (json.status_code, large.status_code) == (415, 413)
    [kiban] = source_statuses(state.counters("source"), {})
    assert kiban.name == "kiban" and kiban.rejected == 2
    state.close()
