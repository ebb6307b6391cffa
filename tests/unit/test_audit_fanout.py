"""One `routed` record per change (bus/audit/fanout.py, [audit] routed_records): the router's
per-destination events are written as one record, verified as any other, and a message's life
shows them again one per destination, exactly as reported."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bus.audit import AuditEvent, AuditLog, AuditRecorder, EventType, open_store, verify
from bus.audit.fanout import is_joined, join, split, split_records
from bus.audit.fanout import routed as routed_record
from bus.audit.guard import screen
from bus.audit.hooks import AuditHooks
from bus.envelope import Envelope
from bus.errors import ConfigError, PersonalDataInAudit
from bus.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import audit_cases as cases  # the contract suite's sample envelopes

#: free text as a route's legal basis may hold it: spaces, quotes, commas, brackets, a newline
AWKWARD = '番号法第9条 別表第一の "三十", [注] 第2項\n附則'


def at_once(events: list[AuditEvent]) -> list[AuditEvent]:
    """`events` at the first one's time: a joined record keeps one time (the router makes them together)."""
    return [replace(e, at=events[0].at) for e in events]


def projections(history: int = 1, destinations: tuple[str, ...] = ("zei", "kokuho", "kaigo"),
                basis: str | None = "地方税法第294条") -> list[Envelope]:
    """A change's projections' envelopes, as the route stage reports them (StageHooks.routed)."""
    env = cases.envelope(history)
    return [env.for_destination(d, f"{d}.jumin", 1, f"{d}-default", AWKWARD if d == "kokuho" else basis)
            for d in destinations]


def routed(history: int = 1, destinations: tuple[str, ...] = ("zei", "kokuho", "kaigo"),
           basis: str | None = "地方税法第294条") -> list[AuditEvent]:
    return at_once([AuditEvent.of(EventType.ROUTED, e) for e in projections(history, destinations, basis)])


def test_a_changes_routed_events_join_into_one_and_split_back_exactly() -> None:
    life = cases.life(1)
    life[2:4] = at_once(life[2:4])  # received, accepted, routed zei (no legal basis), routed kokuho, delivered, …
    joined = join(life)
    assert [e.event for e in joined] == [EventType.RECEIVED, EventType.ACCEPTED, EventType.ROUTED,
                                         EventType.DELIVERED, EventType.RETRIED, EventType.DELIVERED]
    one = joined[2]
    assert is_joined(one) and one.destination == "zei kokuho" and one.route == "zei-all kokuho-household"
    assert split(one) == life[2:4]
    events = routed()
    assert split(join(events)[0]) == events  # the awkward text and the order come back as they were


def test_only_a_run_of_one_changes_plain_routed_events_is_joined() -> None:
    a, b = routed(1), routed(2)
    assert join(a[:1]) == a[:1] and not is_joined(a[0])  # one destination: an ordinary record
    assert [e.destination for e in join(a + b)] == ["zei kokuho kaigo", "zei kokuho kaigo"]
    interleaved = [a[0], b[0], a[1], b[1]]
    assert join(interleaved) == interleaved  # another message between: written as reported
    noted = [a[0], replace(a[1], reason="pinned"), a[2]]
    assert join(noted) == noted  # an event with more to say than its destination stays its own


def test_the_route_stage_s_report_is_built_as_the_one_record_join_makes() -> None:
    for destinations in (("zei", "kokuho", "kaigo"), ("zei", "kokuho")):
        envelopes = projections(1, destinations)
        (built,) = routed_record(envelopes)
        (joined,) = join(routed(1, destinations))
        assert replace(built, at=joined.at) == joined
        assert screen(built) == built  # nothing in it to mask: kept as made
        assert split(built) == [replace(AuditEvent.of(EventType.ROUTED, e), at=built.at) for e in envelopes]
    one = projections(1, ("zei",))
    (alone,) = routed_record(one)
    assert alone == replace(AuditEvent.of(EventType.ROUTED, one[0]), at=alone.at)
    spaced = projections(1, ("zei", "kokuho"))
    spaced[1] = replace(spaced[1], route="kokuho default")  # a space in an identifier: not joined, screened alone
    assert [e.destination for e in routed_record(spaced)] == ["zei", "kokuho"]
    with pytest.raises(PersonalDataInAudit, match="route"):
        screen(routed_record(spaced)[1])


def test_a_joined_record_is_screened_part_by_part() -> None:
    (record,) = routed_record(projections(1, basis=f"本人 {cases.PERSONAL_NUMBER} の照会"))
    kept = screen(record)
    assert cases.PERSONAL_NUMBER not in (kept.legal_basis or "")
    bases = [e.legal_basis or "" for e in split(kept)]  # still a list, one per destination
    assert len(bases) == 3 and "本人 " in bases[0] and bases[1] == AWKWARD
    long = "第1条 " * 400  # 2,400 characters: shortened as one basis, and the list still reads back
    (record,) = routed_record(projections(2, basis=long))
    assert [len(e.legal_basis or "") for e in split(screen(record))] == [1001, len(AWKWARD), 1001]
    for field in ("destination", "route"):
        (record,) = routed_record(projections(3))
        bad = replace(record, **{field: f"zei {cases.PERSONAL_NUMBER} kaigo"})
        with pytest.raises(PersonalDataInAudit, match=field):
            screen(bad)
    not_json = replace(record, legal_basis=f"[{cases.PERSONAL_NUMBER}")
    assert cases.PERSONAL_NUMBER not in (screen(not_json).legal_basis or "")


async def test_the_audit_hooks_write_a_change_as_one_record_or_one_per_destination(tmp_path: Path) -> None:
    for join_routed, expected in ((True, ["zei kokuho kaigo"]), (False, ["zei", "kokuho", "kaigo"])):
        log = AuditLog(open_store(tmp_path / f"{join_routed}.sqlite"))
        recorder = AuditRecorder(log, join_routed=join_routed)
        AuditHooks(recorder).routed(projections(1))
        await recorder.aclose()
        assert [r.event.destination for r in log.store.records()] == expected
        assert verify(log.store).ok
        log.close()


async def test_the_recorder_writes_one_record_per_change_that_verifies_and_reads_back_per_destination(
        tmp_path: Path) -> None:
    log = AuditLog(open_store(tmp_path / "a.sqlite"))
    recorder = AuditRecorder(log)
    first, second = routed(1), routed(2, ("zei", "kokuho", "kaigo", "nenkin", "senkyo"))
    for event in first + second:
        recorder.emit(event)
    await recorder.flush()
    records = list(log.store.records())
    assert [r.event.destination for r in records] == ["zei kokuho kaigo", "zei kokuho kaigo nenkin senkyo"]
    assert verify(log.store).ok
    assert [r.event for r in log.life(first[0].message_id or "")] == first
    life = log.life(second[0].message_id or "")
    assert [r.event for r in life] == second and {r.seq for r in life} == {records[1].seq}
    await recorder.aclose()
    log.close()


async def test_per_destination_writes_a_record_each(tmp_path: Path) -> None:
    log = AuditLog(open_store(tmp_path / "a.sqlite"))
    recorder = AuditRecorder(log, join_routed=False)
    for event in routed(1):
        recorder.emit(event)
    await recorder.aclose()
    assert [r.event.destination for r in log.store.records()] == ["zei", "kokuho", "kaigo"]
    log.close()


async def test_a_legal_basis_is_screened_before_it_is_joined(tmp_path: Path) -> None:
    log = AuditLog(open_store(tmp_path / "a.sqlite"))
    recorder = AuditRecorder(log)
    for event in routed(1, basis=f"本人 {cases.PERSONAL_NUMBER} の照会"):
        recorder.emit(event)
    await recorder.aclose()
    (record,) = list(log.store.records())
    assert is_joined(record.event) and cases.PERSONAL_NUMBER not in (record.event.legal_basis or "")
    log.close()


def test_an_altered_joined_record_is_shown_as_stored() -> None:
    one = join(routed(1))[0]
    for altered in (replace(one, legal_basis="not json"), replace(one, legal_basis='["one"]'),
                    replace(one, route="only-one")):
        assert split(altered) == [altered]
    assert split_records([]) == []


def test_the_setting_chooses_the_form_and_refuses_a_wrong_value(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    assert Settings.load(None).audit.routed_records == "per_change"
    config.write_text('[audit]\nrouted_records = "per_destination"\n', encoding="utf-8")
    assert Settings.load(config).audit.routed_records == "per_destination"
    config.write_text('[audit]\nrouted_records = "per_message"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"routed_records must be one of per_change, per_destination"):
        Settings.load(config)
