"""The audit record model: events from envelopes, canonical hashing, and the personal-data guard."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.audit import AuditEvent, EventType, screen
from bus.audit.chain import GENESIS, AuditRecord, Head, canonical, legacy_hash, link, link_rows, record_hash
from bus.audit.store import COLUMNS
from bus.envelope import Envelope
from bus.errors import PersonalDataInAudit
from bus.masking import Pseudonymizer

P = Pseudonymizer(b"unit-test-pseudonym-key-000001")
SUBJECT = P.subject("131016", "000123456789")


def envelope() -> Envelope:
    return Envelope(message_id=P.message_id("131016", "000123456789", 3), kind="jumin.idou", schema_version=1,
                    content_type="application/xml", municipality="131016", source="jumin", subject=SUBJECT,
                    sequence=3)


def test_every_life_event_of_design_section_6_has_a_type() -> None:
    """received … released: the twelve events of DESIGN §6, stored by their value, and the
    operator's unmasked view of a dead letter (issue: that request is itself audited), and the
    tenancy refusals: failed authentication, a forbidden municipality, a refused destination; and
    the trail's own `migrated` (renkei audit migrate)."""
    assert {e.value for e in EventType} == {
        "received", "rejected", "accepted", "duplicate", "routed", "delivered", "retried", "dead_lettered",
        "replayed", "discarded", "held", "released", "viewed_unmasked", "auth_failed", "forbidden", "refused",
        "migrated"}


def test_an_event_of_a_projection_envelope_carries_destination_route_and_legal_basis() -> None:
    """AuditEvent.of takes the envelope's ids and, for a projection, where it went and why."""
    projection = envelope().for_destination("kokuho", "kokuho.jumin", 1, "kokuho-household", "番号法第9条")
    event = AuditEvent.of(EventType.DELIVERED, projection, receipt="r-1")
    assert (event.message_id, event.subject, event.sequence) == (envelope().message_id, SUBJECT, 3)
    assert (event.destination, event.route, event.projection, event.legal_basis, event.receipt) == (
        "kokuho", "kokuho-household", "kokuho.jumin", "番号法第9条", "r-1")
    rejected = AuditEvent.of("rejected", envelope(), codes=["R300", "R402"])
    assert rejected.codes == ("R300", "R402") and rejected.destination is None


def test_the_canonical_form_is_stable_and_covers_every_field() -> None:
    """Same content, same bytes; any field, the seq or the prev_hash changes the hash."""
    event = AuditEvent.of(EventType.ACCEPTED, envelope())
    assert canonical(1, event) == canonical(1, AuditEvent(**{
        f: getattr(event, f) for f in event.__dataclass_fields__}))
    base = record_hash(1, GENESIS, event)
    assert record_hash(2, GENESIS, event) != base
    assert record_hash(1, "f" * 64, event) != base
    for change in ({"destination": "zei"}, {"at": "2020-01-01T00:00:00+00:00"}, {"codes": ("R1",)}):
        from dataclasses import replace

        assert record_hash(1, GENESIS, replace(event, **change)) != base  # type: ignore[arg-type]


def test_link_chains_each_record_to_the_one_before() -> None:
    """link() numbers records after the head and gives each the previous hash."""
    events = [AuditEvent.of(EventType.RECEIVED, envelope()), AuditEvent.of(EventType.ACCEPTED, envelope())]
    records = link(Head(41, "a" * 64), events)
    assert [r.seq for r in records] == [42, 43]
    assert records[0].prev_hash == "a" * 64 and records[1].prev_hash == records[0].hash
    assert all(r.computed_hash == r.hash for r in records)


def test_the_rows_the_stores_write_carry_the_documented_hashes_and_read_back_as_the_records() -> None:
    """link_rows (the stores' one pass over a batch) hashes as the format documents it (JSON,
    sorted keys, SHA-256 of the content, then of "renkei-audit|2|" prev "|" digest) and its rows
    read back as the very records it chained."""
    import hashlib

    full = AuditEvent(EventType.RETRIED, envelope().message_id, "131016", SUBJECT, 3, "jumin.idou", "jumin",
                      "kokuho", "kokuho-household", "kokuho.jumin", "番号法第9条", ("D100", "D200"), "r-1",
                      "operator-1", "HTTP 503 \"busy\"", 2)
    events = [AuditEvent.of(EventType.ACCEPTED, envelope()), full, AuditEvent(EventType.AUTH_FAILED, actor="http")]
    records, rows = link_rows(Head(7, "b" * 64), events)
    prev = "b" * 64
    for seq, (event, record, row) in enumerate(zip(events, records, rows, strict=True), start=8):
        data = {name: getattr(event, name) for name in event.__dataclass_fields__}
        data.update(event=str(event.event), codes=list(event.codes), seq=seq, v=2)
        content = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        digest = hashlib.sha256(content).hexdigest()
        expected = hashlib.sha256(f"renkei-audit|2|{prev}|{digest}".encode()).hexdigest()
        assert (record.seq, record.prev_hash, record.hash, record.event) == (seq, prev, expected, event)
        assert AuditRecord.from_row(dict(zip(COLUMNS, row, strict=True))) == record
        prev = expected
    assert rows[1][COLUMNS.index("codes")] == "D100,D200" and rows[1][COLUMNS.index("event")] == "retried"
    assert link(Head(7, "b" * 64), events) == records


@pytest.mark.parametrize(("field", "value", "what"), [
    ("subject", "000123456789", "not a pseudonym"),
    ("message_id", "000123456789", "all digits"),
    ("destination", "zei 123456789018", "not an identifier"),
    ("route", "route-123456789018", "個人番号"),
    ("actor", "12345", "all digits"),
    ("municipality", "13101", "6-digit"),
])
def test_identifiers_that_may_be_personal_data_are_refused(field: str, value: str, what: str) -> None:
    """A raw 宛名番号 or a 個人番号 in an identifier field raises, naming the field."""
    values = {"message_id": envelope().message_id, "subject": SUBJECT, field: value}
    event = AuditEvent(EventType.ROUTED, **values)
    with pytest.raises(PersonalDataInAudit, match=f"'{field}'.*{what}"):
        screen(event)


def test_personal_numbers_in_free_text_are_masked_not_kept() -> None:
    """A valid 個人番号 or 住民票コード quoted in a reason is masked; other numbers stay."""
    event = AuditEvent(EventType.DEAD_LETTERED, subject=SUBJECT,
                       reason="HTTP 422: personal_number 123456789018 / resident 12345678903 / attempt 3")
    screened = screen(event)
    assert screened.reason is not None
    assert "123456789018" not in screened.reason and "12345678903" not in screened.reason
    assert "************ (12 chars)" in screened.reason and "attempt 3" in screened.reason


def test_a_free_text_seen_clean_is_not_scanned_again_and_a_masked_one_is_masked_every_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A route's legal basis is on ~10 events per change: once found clean it is not scanned for
    personal numbers again; a text that needed masking is never remembered, so it is masked on
    every event that carries it."""
    from bus.audit import guard

    basis = "番号法 第9条第1項 別表 (令和5年法律第48号による改正後) 第294条 " + uuid_like()
    quoting = f"HTTP 422: personal_number 123456789018 {uuid_like()}"
    scanned: list[str] = []
    real = guard._personal_number

    def counting(text: str) -> str | None:
        scanned.append(text)
        return real(text)

    monkeypatch.setattr(guard, "_personal_number", counting)
    for _ in range(3):
        assert screen(AuditEvent(EventType.ROUTED, subject=SUBJECT, legal_basis=basis)).legal_basis == basis
        assert "123456789018" not in (screen(AuditEvent(EventType.DEAD_LETTERED, subject=SUBJECT,
                                                        reason=quoting)).reason or "123456789018")
    assert scanned.count(basis) == 1
    assert scanned.count(quoting) >= 3


def uuid_like() -> str:
    """A text unique to this run (the guard remembers the clean texts it has scanned), of letters
    only: a random hex string can hold an 11- or 12-digit run, which the guard rightly masks as a
    住民票コード or 個人番号 (CI once drew "…2d54109433430dd")."""
    import uuid

    return uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))


def test_an_ordinary_event_passes_the_guard_unchanged() -> None:
    """Pseudonyms, hex ids, codes and plain reasons are what the trail is for."""
    event = AuditEvent.of(EventType.RETRIED, envelope(), attempt=2, reason="HTTP 503", codes=["R300"])
    assert screen(event) is event


def test_the_fast_path_of_of_makes_the_same_event_as_the_general_one() -> None:
    """`of` without extra fields (the router's and deliverer's hot path) skips the dict."""
    for env in (envelope(), envelope().for_destination("zei", "zei.jumin", 1, "zei-default", "番号法第9条")):
        fast = AuditEvent.of(EventType.ROUTED, env)
        general = AuditEvent.of(EventType.ROUTED, env, at=fast.at)
        assert fast == general


def test_an_identifier_that_passed_once_does_not_let_a_bad_one_through_later() -> None:
    """The guard remembers values that passed (kinds, routes …), never ones that failed."""
    good = AuditEvent(EventType.ROUTED, message_id=envelope().message_id, subject=SUBJECT, route="zei-default")
    for _ in range(3):
        assert screen(good) is good
    for value in ("route-123456789018", "12345"):
        with pytest.raises(PersonalDataInAudit, match="'route'"):
            screen(AuditEvent(EventType.ROUTED, message_id=envelope().message_id, subject=SUBJECT, route=value))
        with pytest.raises(PersonalDataInAudit, match="'route'"):  # and again: it was not remembered
            screen(AuditEvent(EventType.ROUTED, message_id=envelope().message_id, subject=SUBJECT, route=value))


_texts = st.text(st.characters(exclude_categories=("Cs",)))


@settings(max_examples=500)
@given(st.dictionaries(st.sampled_from(["event", "reason", "seq", "codes", "v", "a", "z"]),
                       st.one_of(st.none(), st.integers(-2**62, 2**62), _texts, st.lists(_texts, max_size=3))))
def test_the_canonical_bytes_are_what_the_json_module_writes(data: dict[str, object]) -> None:
    """canonical() uses orjson for speed; its bytes must stay those of the documented form (json,
    keys sorted, no spaces, UTF-8), or trails written before would no longer verify."""
    documented = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert orjson.dumps(data, option=orjson.OPT_SORT_KEYS) == documented


def test_an_event_with_control_characters_and_every_plane_hashes_as_documented() -> None:
    reason = "\x00\x1f\x7f\u2028\ue000\uffff\U0010ffff\"\\/\b\f\n\r\t 番号法"
    event = AuditEvent(EventType.DISCARDED, subject=SUBJECT, reason=reason, actor="operator-1")
    data = {name: getattr(event, name) for name in event.__dataclass_fields__}
    data.update(event="discarded", codes=[], seq=1, v=2)
    assert canonical(1, event) == json.dumps(data, sort_keys=True, separators=(",", ":"),
                                                      ensure_ascii=False).encode("utf-8")


def test_a_record_of_format_1_still_verifies_and_an_altered_one_does_not() -> None:
    """Trails written before format 2 (hash over the canonical form with prev_hash inside) verify."""
    from dataclasses import replace

    event = AuditEvent.of(EventType.ACCEPTED, envelope())
    old = AuditRecord(1, GENESIS, legacy_hash(1, GENESIS, event), event)
    assert old.computed_hash == old.hash != record_hash(1, GENESIS, event)
    altered = replace(old, event=replace(event, destination="zei"))
    assert altered.computed_hash != altered.hash


def test_the_trail_timestamp_is_what_datetime_writes_across_a_second_and_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """utc_now formats the date and time once per second: its text must stay exactly
    datetime's isoformat (microseconds, +00:00) on either side of a second and of midnight."""
    import time
    from datetime import UTC, datetime

    from bus.audit import events

    for ns in (1_767_225_599_999_999_000, 1_767_225_600_000_001_000, 1_767_225_600_500_000_000,
               1_767_225_599_000_000_000, 1_767_312_000_123_456_789):
        monkeypatch.setattr(time, "time_ns", lambda ns=ns: ns)
        micros = ns // 1000
        expected = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
            microsecond=micros % 1_000_000).isoformat(timespec="microseconds")
        assert events.utc_now() == expected
    monkeypatch.undo()
    before = datetime.now(UTC)
    now = datetime.fromisoformat(events.utc_now())
    assert before <= now <= datetime.now(UTC)
