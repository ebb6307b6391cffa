"""bus.tenancy and bus.stages.gate: who a token or broker user is, what it may submit for, and which
destinations a route reaches for each municipality — with the guard that never lets a
destination of one municipality receive another's change."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from bus.envelope import Envelope
from bus.errors import PermanentError, SourceForbidden
from bus.ports import FunctionSink, ItemResult, Outbound, Receipt
from bus.stages.gate import TenantGuardSink
from bus.tenancy import SourceBinding, Sources, Tenancy, hash_token, token_digest, token_id

A, B = "131016", "271004"
TOKEN = "t" * 43


@dataclass
class Dest:
    system: str
    municipalities: frozenset[str] | None


def sources() -> Sources:
    return Sources([
        SourceBinding("jumin-a", frozenset({A}), (hashlib.sha256(TOKEN.encode()).digest(),), amqp_user="vendor-a"),
        SourceBinding("jumin-b", frozenset({B}), (token_digest(hash_token("u" * 43)), token_digest("v" * 43))),
    ])


def test_a_token_names_its_source_and_nothing_else_does() -> None:
    s = sources()
    assert s.by_token(TOKEN).id == "jumin-a"  # type: ignore[union-attr]
    assert s.by_token("u" * 43).id == "jumin-b"  # type: ignore[union-attr]
    assert s.by_token(TOKEN + "x") is None and s.by_token("") is None
    assert s.by_amqp_user("vendor-a").id == "jumin-a" and s.by_amqp_user("guest") is None  # type: ignore[union-attr]


def test_each_of_a_sources_tokens_names_it_with_the_tokens_id() -> None:
    """Two tokens while one is rotated: either names the source; the id is the start of the
    token's configured hash form, so the operator can tell which line is still in use."""
    s = sources()
    assert s.identify("u" * 43) == (s.get("jumin-b"), hash_token("u" * 43)[:19])
    assert s.identify("v" * 43) == (s.get("jumin-b"), hash_token("v" * 43)[:19])
    assert token_id(token_digest("v" * 43)) == hash_token("v" * 43)[:len("sha256:") + 12]
    assert s.identify("w" * 43) is None


def test_a_source_may_submit_only_for_its_own_municipalities() -> None:
    s = sources()
    s.check("jumin-a", A)
    with pytest.raises(SourceForbidden, match="may not submit for municipality 271004"):
        s.check("jumin-a", B)
    with pytest.raises(SourceForbidden, match="not configured"):
        s.check("kiban", A)  # an id nobody configured (e.g. the legacy default "http")
    Sources().check("anyone", B)  # no sources configured: the open development intake


def test_a_malformed_token_hash_is_refused() -> None:
    with pytest.raises(ValueError, match="64 lower-case hex"):
        token_digest("sha256:abc")


def tenancy() -> Tenancy:
    return Tenancy({f"zei-{A}": Dest("zei", frozenset({A})), f"zei-{B}": Dest("zei", frozenset({B})),
                    f"kokuho-{A}": Dest("kokuho", frozenset({A}))}, strict=True)


def test_a_route_to_a_system_reaches_only_the_changes_own_municipality() -> None:
    t = tenancy()
    assert t.targets("zei", A) == [f"zei-{A}"] and t.targets("zei", B) == [f"zei-{B}"]
    assert t.targets("kokuho", B) == []  # B has no kokuho destination: nothing, not A's
    assert t.addressable(["zei", "kokuho", "kaigo"]) == [f"kokuho-{A}", f"zei-{A}", f"zei-{B}"]
    assert t.unaddressed(["zei", "kaigo"]) == ["kaigo"]


def test_a_route_naming_a_destination_directly_is_still_guarded() -> None:
    """The careless route: it names A's destination; targets says so, admits refuses B."""
    t = tenancy()
    assert t.targets(f"kokuho-{A}", B) == [f"kokuho-{A}"]
    assert t.admits(f"kokuho-{A}", A) and not t.admits(f"kokuho-{A}", B)
    assert t.targets("kaigo", A) == [] and not t.admits("kaigo", A)  # strict: no shared queue


def test_a_single_municipality_bus_keeps_plain_destinations() -> None:
    t = Tenancy({"zei": Dest("", None)}, strict=False)
    assert t.targets("zei", A) == ["zei"] and t.targets("kaigo", A) == ["kaigo"] and t.admits("kaigo", B)


async def test_the_sink_guard_dead_letters_a_change_of_another_municipality() -> None:
    delivered: list[Outbound] = []
    sink = TenantGuardSink(FunctionSink(lambda m: delivered.append(m) or Receipt.applied(m)), f"zei-{A}", tenancy())

    def outbound(municipality: str) -> Outbound:
        envelope = Envelope("m" * 32, "zei.jumin", 1, "application/xml", municipality, "jumin-a", "s" * 32, 1,
                            destination=f"zei-{A}")
        return Outbound(envelope, {}, b"<x/>")

    await sink.deliver(outbound(A))
    with pytest.raises(PermanentError, match="A410"):
        await sink.deliver(outbound(B))
    assert [m.envelope.municipality for m in delivered] == [A]


async def test_the_sink_guard_refuses_another_municipalitys_item_of_a_batch_alone() -> None:
    sent: list[list[str]] = []

    class Batches:
        batch_size = 10

        async def deliver(self, message: Outbound) -> Receipt:
            return Receipt.applied(message)

        async def deliver_many(self, messages: Sequence[Outbound]) -> list[ItemResult]:
            sent.append([m.envelope.municipality for m in messages])
            return [Receipt.applied(m) for m in messages]

    guard = TenantGuardSink(Batches(), f"zei-{A}", tenancy())
    assert guard.batch_size == 10 and TenantGuardSink(FunctionSink(Receipt.applied), "zei", tenancy()).batch_size == 1

    def outbound(municipality: str) -> Outbound:
        return Outbound(Envelope("m" * 32, "zei.jumin", 1, "application/xml", municipality, "jumin-a", "s" * 32, 1,
                                 destination=f"zei-{A}"), {}, b"<x/>")

    results = await guard.deliver_many([outbound(A), outbound(B), outbound(A)])
    assert sent == [[A, A]]
    assert isinstance(results[0], Receipt) and isinstance(results[2], Receipt)
    assert isinstance(results[1], PermanentError) and "A410" in str(results[1])
