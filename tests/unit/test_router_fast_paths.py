"""The router's hot paths give exactly what the slower general forms give."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bus.envelope import Envelope
from bus.state import StateStore


def _envelope(**extra: object) -> Envelope:
    return Envelope(message_id="m1", kind="jumin.idou", schema_version=1, content_type="application/xml",
                    municipality="131016", source="s", subject="abc", sequence=3, **extra)  # type: ignore[arg-type]


def test_router_headers_equal_the_envelope_headers() -> None:
    base = _envelope()
    routed = base.for_destination("zei", "zei.jumin", 1, "zei-all-changes", "番号法 第9条")
    unrouted = base.for_destination("chukan", "chukan.fukuhon", 1, "chukan-fukuhon", None)
    for envelope in (base, routed, unrouted, _envelope(trace="t", correlation_id="c")):
        slow = {k: v for k, v in dataclasses.asdict(envelope).items() if v is not None}
        assert envelope.to_headers() == slow
        assert list(envelope.to_headers()) == list(slow)
        assert Envelope.from_headers(envelope.to_headers()) == envelope


def test_record_routed_marks_the_message_and_counts_each_destination(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite")
    state.record_routed("m1", ["zei", "kaigo"])
    state.record_routed("m2", ["zei"])
    state.record_routed("m3", [])
    assert state.is_routed("m1") and state.is_routed("m2") and state.is_routed("m3")
    assert not state.is_routed("m4")
    assert state.counters("destination") == {"zei": {"routed": 2}, "kaigo": {"routed": 1}}
    state.close()


def test_for_destination_is_the_envelope_with_only_the_addressing_fields_replaced() -> None:
    for base in (_envelope(), _envelope(trace="t", correlation_id="c")):
        got = base.for_destination("zei", "zei.jumin", 2, "zei-all-changes", "番号法 第9条")
        assert got == dataclasses.replace(
            base, kind="zei.jumin", schema_version=2, content_type="application/xml", destination="zei",
            route="zei-all-changes", legal_basis="番号法 第9条", correlation_id=base.correlation_id or base.message_id)
