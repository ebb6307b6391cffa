"""The resident-change flow end to end — intake, router, deliverers, HTTP sinks, simulators —
the same code on the embedded broker and on a real RabbitMQ.

What each system should receive is worked out from the route table; what each simulator
applied is read back from the files it wrote. Beyond "everything expected arrived", these
tests prove the promises that matter most: the 中間サーバー never receives a 個人番号, a
destination with a declared legal basis does, each resident's changes arrive in order, and
no personal value reaches the bus's log.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from adapters.simulators.state import read_received
from bus.catalog import Catalog
from bus.demo import DemoOptions, DemoResult, demo_feed, run_demo
from bus.logs import configure_logging

CHANGES = 80


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def _options(out: Path, broker_url: str | None, shards: int = 1, processes: int = 3) -> DemoOptions:
    return DemoOptions(changes=CHANGES, out=out, seed=11, invalid_rate=0.08, duplicate_rate=0.08,
                       feeders=4, idle_timeout=120, broker_url=broker_url, shards=shards,
                       support_rate=0.1,  # 支援措置 without a 異動 (jumin.shien) among the changes
                       processes=processes, log_file=out / "processes.log", log_level="debug")


@dataclass
class Flow:
    result: DemoResult
    store: Path  # what the simulators applied: <destination>/<key>.xml, their identifiers in the journal
    log: str  # every log line of the run, at debug level, as the JSON a production bus writes
    options: DemoOptions


@pytest.fixture(scope="module", params=["embedded", "embedded-1-process", "embedded-2-processes",
                                        pytest.param("amqp", marks=pytest.mark.amqp),
                                        pytest.param("amqp-3-shards", marks=pytest.mark.amqp)])
def flow(request: pytest.FixtureRequest, catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> Flow:
    """One run of the whole flow per broker (the embedded one with the bus in 3 processes, the
    demo's default, in 1, and in 2: bus.demo_procs.split), shared by the tests of this module."""
    embedded = request.param.startswith("embedded")
    broker_url = None if embedded else request.getfixturevalue("amqp_vhost_url")
    processes = {"embedded-1-process": 1, "embedded-2-processes": 2}.get(request.param, 3)
    options = _options(tmp_path_factory.mktemp(f"flow-{request.param}"), broker_url,
                       shards=3 if request.param.endswith("shards") else 1, processes=processes)
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    try:
        result = asyncio.run(run_demo(options, catalog=catalog))
    finally:
        structlog.reset_defaults()
    assert result.processes == (processes if embedded else 1)
    children = options.log_file.read_text(encoding="utf-8") if options.log_file and options.log_file.exists() else ""
    assert (children != "") == (result.processes > 1)  # the other processes' log: checked as this one's is
    return Flow(result, options.out / "received", stream.getvalue() + children, options)


def _received(store: Path, destination: str) -> list[tuple[dict[str, Any], bytes]]:
    """(meta, body) of every message a simulator applied, in the order it applied them."""
    return sorted(read_received(store / destination), key=lambda item: item[0]["number"])


def _personal_values(catalog: Catalog, options: DemoOptions) -> set[str]:
    """The personal values the registry sent: numbers, names, kana, street addresses."""
    values: set[str] = set()
    for item in demo_feed(catalog, options):
        r = item.record
        if r is None or item.kind != "jumin.idou":  # a 支援措置 holds only a resident's 宛名番号/世帯番号
            continue
        values.update(v for v in (r["address_number"], r.get("personal_number"), r.get("resident_code"),
                                  r["integrated_address_number"]) if v)
        name = r["name"]
        values.add(name["family_name"] + name["given_name"])
        values.add(name["family_name_kana"] + name["given_name_kana"])
        values.add(r["address"]["town"] + r["address"]["banchi"])
    return values


def test_every_change_reaches_exactly_the_systems_its_routes_name(flow: Flow) -> None:
    result = flow.result
    assert result.idle
    assert not result.wrong_answers  # invalid ones rejected with their code, duplicates answered so
    assert result.answers["rejected"] > 0 and result.answers["duplicate"] > 0
    for tally in result.destinations:
        assert tally.missing == 0, tally
        assert tally.unexpected == 0, tally
    reached = {t.destination for t in result.destinations if t.delivered}
    assert reached == {"zei", "kokuho", "kaigo", "koki", "nenkin", "fukushi", "chukan", "portal", "togo",
                       "togo_oshirase", "senkyo", "shugaku",
                       # ぴったりサービス applications from the portal, each to its 業務 system
                       "jumin_shinsei", "kaigo_shinsei", "fukushi_shinsei"}
    measures = sum(result.support_measures.values())  # every system taking resident changes gets them
    assert measures > 0
    assert next(t for t in result.destinations if t.destination == "zei").delivered == CHANGES + measures
    assert result.ok


def test_the_intermediate_server_never_receives_a_personal_number(flow: Flow, catalog: Catalog) -> None:
    numbers = {item.record["personal_number"].encode() for item in demo_feed(catalog, flow.options)
               if item.record is not None and item.record.get("personal_number")}
    assert numbers
    chukan = _received(flow.store, "chukan")
    assert chukan, "the intermediate server received nothing"
    for _, body in chukan:
        assert b"personal_number" not in body
        assert not any(number in body for number in numbers)
    # the tax system's route declares a legal basis (番号法 別表第一): it does get the number
    zei = _received(flow.store, "zei")
    assert any(b"personal_number" in body for _, body in zei)
    assert flow.result.ok


def test_each_residents_changes_arrive_in_registry_order(flow: Flow) -> None:
    assert flow.result.ok
    checked = 0
    for tally in flow.result.destinations:
        by_subject: dict[str, list[int]] = {}
        for meta, _ in _received(flow.store, tally.destination):
            by_subject.setdefault(meta["subject"], []).append(meta["sequence"])
        for subject, sequences in by_subject.items():
            assert sequences == sorted(sequences), (tally.destination, subject, sequences)
            checked += len(sequences) > 1
    assert checked > 0, "no resident had two changes: the order was not tested"


def test_no_personal_value_reaches_the_log(flow: Flow, catalog: Catalog) -> None:
    assert flow.result.ok
    text = flow.log
    assert '"event": "rejected"' in text and '"event": "duplicate"' in text  # the log did capture the run
    values = _personal_values(catalog, flow.options)
    assert len(values) > CHANGES
    leaked = sorted(v for v in values if v in text)
    assert leaked == []


def test_the_audit_trail_holds_every_messages_life_and_verifies(flow: Flow) -> None:
    """On each broker: the chain verifies, and every delivered message's life (AuditLog.life, as
    `renkei audit show` shows it) starts received → accepted and holds a routed and a delivered
    for each destination; rejections and duplicates are there too. With the bus in several
    processes each writes its own batches, so the router's `routed` may be stored before the
    intake's `received`: the life is ordered by when each event happened, and `received` (made
    before the publish) comes first. (`accepted` is made when the publish is confirmed, so a
    router in another process may route the change a moment before: no order is asserted there.)"""
    from bus.audit import AuditLog, open_store, verify

    log = AuditLog(open_store(flow.options.out / "state" / "audit.sqlite"))
    try:
        report = verify(log.store)
        assert report.ok, report
        ids: set[str] = set()
        kinds: set[str] = set()
        for record in log.store.records():
            kinds.add(record.event.event.value)
            if record.event.message_id:
                ids.add(record.event.message_id)
        lives = {message_id: [(r.event.event.value, r.event.destination) for r in log.life(message_id)]
                 for message_id in ids}
    finally:
        log.close()
    assert {"received", "accepted", "rejected", "duplicate", "routed", "delivered"} <= kinds
    # the 中間サーバー and the portal are fed by the 団体内統合宛名 function (its simulator), not by the bus
    delivered = {t.destination: t.delivered for t in flow.result.destinations
                 if t.destination not in ("chukan", "portal")}
    counted = {d: 0 for d in delivered}
    for message_id, life in lives.items():
        names = [name for name, _ in life]
        if "accepted" not in names:
            continue
        assert names[0] == "received" and names.index("received") < names.index("accepted"), (message_id, names)
        routed = {d for name, d in life if name == "routed"}
        done = {d for name, d in life if name == "delivered"}
        assert routed == done, (message_id, routed, done)
        for d in done:
            counted[d] += 1
    assert counted == delivered
