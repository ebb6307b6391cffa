"""The router's hot paths give exactly what the slower general forms give."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bus.envelope import Envelope
from bus.errors import ConfigError
from bus.groupcommit import GroupCommit
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


def test_record_routed_many_is_record_routed_for_each(tmp_path: Path) -> None:
    one, many = StateStore(tmp_path / "one.sqlite"), StateStore(tmp_path / "many.sqlite")
    batch = [("m1", ["zei", "kaigo"]), ("m2", ["zei"]), ("m3", [])]
    for message_id, destinations in batch:
        one.record_routed(message_id, destinations)
    many.record_routed_many(batch)
    assert many.counters("destination") == one.counters("destination") == {"zei": {"routed": 2},
                                                                            "kaigo": {"routed": 1}}
    assert all(many.is_routed(m) for m, _ in batch) and not many.is_routed("m4")
    one.close()
    many.close()


async def _commit_of(state: StateStore) -> Callable[[list[tuple[str, list[str]]]], Awaitable[list[None]]]:
    async def commit(batch: list[tuple[str, list[str]]]) -> list[None]:  # as the route stage commits
        state.record_routed_many(batch)
        return [None] * len(batch)
    return commit


async def test_messages_finishing_in_one_loop_turn_share_one_transaction(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite")
    transactions: list[int] = []
    record_many = state.record_routed_many

    def counted(routed: list[tuple[str, list[str]]]) -> None:
        transactions.append(len(routed))
        record_many(routed)

    state.record_routed_many = counted  # type: ignore[method-assign]
    group: GroupCommit[tuple[str, list[str]]] = GroupCommit(await _commit_of(state))
    await asyncio.gather(*(group.submit((f"m{n}", ["zei"])) for n in range(8)))
    await group.submit(("m8", ["kaigo"]))
    await group.aclose()
    assert transactions == [8, 1]
    assert state.counters("destination") == {"zei": {"routed": 8}, "kaigo": {"routed": 1}}
    state.close()


async def test_a_failed_group_commit_fails_every_message_in_it(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite")
    state.close()  # every write now fails
    group: GroupCommit[tuple[str, list[str]]] = GroupCommit(await _commit_of(state))
    results = await asyncio.gather(*(group.submit((f"m{n}", ["zei"])) for n in range(3)), return_exceptions=True)
    await group.aclose()
    assert len(results) == 3 and all(isinstance(r, Exception) for r in results)


def _slow_from_headers(headers: dict[str, object]) -> Envelope:
    """Envelope.from_headers as it was written before its fast form: a filtered dict, then cls(**values)."""
    names = Envelope.__dataclass_fields__.keys()
    values = {k: v.decode() if isinstance(v, bytes) else v for k, v in headers.items() if k in names}
    values["schema_version"] = int(values.get("schema_version", 1))  # type: ignore[call-overload]
    values["sequence"] = int(values.get("sequence", 0))  # type: ignore[call-overload]
    values.setdefault("source", "unknown")
    return Envelope(**values)  # type: ignore[arg-type]


def test_envelope_from_headers_gives_what_the_general_form_gives() -> None:
    routed = _envelope(trace="t", correlation_id="c").for_destination("zei", "zei.jumin", 2, "zei-all", "番号法 第9条")
    for headers in (routed.to_headers(), _envelope().to_headers(),
                    {k: v.encode() if isinstance(v, str) else v for k, v in routed.to_headers().items()},
                    {k: str(v) for k, v in routed.to_headers().items()},  # numbers as text (a file's metadata)
                    {**routed.to_headers(), "x-unknown": "ignored", "x-death": [1]}):
        assert Envelope.from_headers(headers) == _slow_from_headers(headers)
    bare = {k: v for k, v in _envelope().to_headers().items() if k not in ("source", "sequence", "schema_version")}
    made = Envelope.from_headers(bare)
    assert (made.source, made.sequence, made.schema_version) == ("unknown", 0, 1)
    without = {k: v for k, v in bare.items() if k != "occurred_at"}
    assert Envelope.from_headers(without).occurred_at  # made now, as the constructor makes it


def test_envelope_from_headers_names_every_missing_header() -> None:
    headers = {k: v for k, v in _envelope().to_headers().items() if k not in ("kind", "subject")}
    with pytest.raises(ConfigError, match="envelope is missing headers: kind, subject"):
        Envelope.from_headers(headers)
