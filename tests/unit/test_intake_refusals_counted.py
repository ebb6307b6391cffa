"""A message the HTTP intake cannot take (415: not XML or Avro; 413: too large) is a rejection
of its source: counted where `renkei status` reads it and in the audit trail, never kept."""

from __future__ import annotations

from pathlib import Path

import httpx

from adapters.sources.http_intake import create_intake_app
from bus.audit.events import AuditEvent, EventType
from bus.audit.hooks import AuditHooks
from bus.ports import Submission
from bus.stages.gate import Gate
from bus.stages.hooks import CountingHooks, Hooks
from bus.state import StateStore
from bus.status import source_statuses
from bus.tenancy import Sources


class _Intake:
    async def submit(self, raw: bytes, *, content_type: str, source: str, kind: str | None = None) -> Submission:
        return Submission("accepted", message_id="m1", kind="jumin.idou")


class _Recorder:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        self.events.append(event)


async def test_a_415_and_a_413_are_counted_as_rejections_of_their_source(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite")
    recorder = _Recorder()
    gate = Gate(Sources(), Hooks(AuditHooks(recorder), CountingHooks(state)))  # type: ignore[arg-type]
    app = create_intake_app(_Intake(), max_body=10, gate=gate)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bus") as client:
        json = await client.post("/v1/messages", content=b"{}",
                                 headers={"Content-Type": "application/json", "X-Renkei-Source": "kiban"})
        large = await client.post("/v1/messages", content=b"x" * 11,
                                  headers={"Content-Type": "application/xml", "X-Renkei-Source": "kiban"})
        fine = await client.post("/v1/messages", content=b"<x/>",
                                 headers={"Content-Type": "application/xml", "X-Renkei-Source": "kiban"})
    assert (json.status_code, large.status_code, fine.status_code) == (415, 413, 202)
    [kiban] = source_statuses(state.counters("source"), {})
    assert kiban.name == "kiban" and kiban.rejected == 2
    assert [(e.event, e.source, e.codes, e.receipt) for e in recorder.events] == [
        (EventType.REJECTED, "kiban", ("R220",), None), (EventType.REJECTED, "kiban", ("R100",), None)]
    assert state.rejected() == []  # nothing of the body is kept
    state.close()
