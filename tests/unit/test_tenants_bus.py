"""Two municipalities on one bus (embedded broker): every tenancy rule, attacked.

The HTTP intake takes only a source's bearer token (401 otherwise, audited without reading
the body), a source submits only for its own municipality (403, audited, not kept), an
inbox speaks for its source only, and a carelessly written route cannot deliver B's change
to A's destination: the router refuses it (audited), and a message put into A's queue by
hand is dead-lettered at the sink. No personal value of a refused change reaches the trail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tenant_fixtures import (
    PSEUDONYM_KEY,
    TOKEN_A,
    TOKEN_B,
    A,
    B,
    change_of,
    personal_values,
    trail_text,
    write_tenant_config,
)

from adapters.sources.directory import DirectorySource
from adapters.sources.http_intake import create_intake_app
from bus.app import Bus, BusParts
from bus.audit.chain import AuditRecord
from bus.brokers.base import OutgoingMessage
from bus.catalog import Catalog
from bus.envelope import Envelope
from bus.ports import FunctionSink, Outbound, Receipt
from bus.settings import Settings
from bus.status import source_statuses
from bus.tenancy import hash_token
from bus.topology import destination_queue

XML = {"Content-Type": "application/xml"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


class Tenants:
    def __init__(self, bus: Bus, received: dict[str, list[Outbound]], client: httpx.AsyncClient) -> None:
        self.bus, self.received, self.client = bus, received, client

    def post(self, body: bytes, token: str | None, **headers: str) -> asyncio.Future[httpx.Response]:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return asyncio.ensure_future(self.client.post("/v1/messages", content=body, headers={**XML, **auth,
                                                                                             **headers}))

    async def trail(self) -> list[AuditRecord]:
        await self.bus.recorder.flush()
        return list(self.bus.audit.store.records())

    def delivered(self, destination: str) -> list[str]:
        return [m.envelope.municipality for m in self.received.get(destination, [])]


@pytest.fixture
async def tenants(tmp_path: Path, catalog: Catalog, request: pytest.FixtureRequest) -> AsyncIterator[Tenants]:
    config = write_tenant_config(tmp_path)
    token_file_a = getattr(request, "param", None)  # indirect: another token file for jumin-a
    if token_file_a is not None:
        (tmp_path / "secrets" / "jumin-a.token").write_text(token_file_a, encoding="utf-8")
    settings = Settings.load(config, env={"RENKEI_PSEUDONYM_KEY": PSEUDONYM_KEY})
    received: dict[str, list[Outbound]] = {}

    def sink(name: str) -> FunctionSink:
        return FunctionSink(lambda m: received.setdefault(name, []).append(m) or Receipt.applied(m))

    bus = Bus(settings, sinks={name: sink(name) for name in settings.destinations}, catalog=catalog)
    await bus.start(BusParts())
    app = create_intake_app(bus.intake, gate=bus.gate)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bus") as client:
        yield Tenants(bus, received, client)
    await bus.stop()


async def test_without_a_token_the_intake_answers_401_and_reads_nothing(tenants: Tenants, catalog: Catalog) -> None:
    body, _ = change_of(catalog, A)
    response = await tenants.post(body, None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="renkei"'
    assert response.json()["issues"][0]["code"] == "A401"
    trail = await tenants.trail()
    assert [(r.event.event.value, r.event.actor, r.event.codes) for r in trail] == [
        ("auth_failed", "http:192.0.2.7", ("A401",))]
    assert tenants.bus.state.counters("auth") == {"http": {"failed": 1}}
    assert tenants.bus.state.counters("source") == {}  # nothing was submitted, accepted or rejected
    assert tenants.bus.state.rejected() == []


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN_A}x", "Bearer ", f"Basic {TOKEN_A}", TOKEN_A])
async def test_a_wrong_or_malformed_token_is_401_and_audited(tenants: Tenants, catalog: Catalog,
                                                            authorization: str) -> None:
    body, record = change_of(catalog, A)
    response = await tenants.client.post("/v1/messages", content=body,
                                         headers={**XML, "Authorization": authorization})
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    trail = await tenants.trail()
    assert [r.event.event.value for r in trail] == ["auth_failed"]
    assert TOKEN_A not in trail_text(trail)  # the presented token is never written down
    assert not [v for v in personal_values([record]) if v in trail_text(trail)]


NEW_TOKEN_A = "rotated-token-of-a-" + "r" * 32


@pytest.mark.parametrize("tenants", [f"{TOKEN_A}\n{hash_token(NEW_TOKEN_A)}\n"], indirect=True)
async def test_during_a_rotation_both_tokens_speak_for_the_source_and_each_is_counted(
        tenants: Tenants, catalog: Catalog) -> None:
    """The operator sees which token the vendor still uses (renkei status, TOKENS USED), and
    the one a request used is never written down (the counter has the hash's first digits)."""
    for seed, token in ((11, TOKEN_A), (12, NEW_TOKEN_A), (13, NEW_TOKEN_A)):
        assert (await tenants.post(change_of(catalog, A, seed=seed)[0], token)).status_code == 202
    assert (await tenants.post(change_of(catalog, A, seed=14)[0], TOKEN_B)).status_code == 403  # B's token
    used = tenants.bus.state.counters("token")
    assert used == {"jumin-a": {hash_token(TOKEN_A)[:19]: 1, hash_token(NEW_TOKEN_A)[:19]: 2},
                    "jumin-b": {hash_token(TOKEN_B)[:19]: 1}}
    [a] = [s for s in source_statuses(tenants.bus.state.counters("source"), used) if s.name == "jumin-a"]
    assert (a.accepted, a.tokens) == (3, used["jumin-a"])
    assert [s.forbidden for s in source_statuses(tenants.bus.state.counters("source"), used)] == [0, 1]
    text = trail_text(await tenants.trail())
    assert NEW_TOKEN_A not in text and hash_token(NEW_TOKEN_A)[7:] not in text


@pytest.mark.parametrize("tenants", [f"{hash_token(NEW_TOKEN_A)}\n"], indirect=True)
async def test_once_the_old_token_is_removed_it_is_refused(tenants: Tenants, catalog: Catalog) -> None:
    assert (await tenants.post(change_of(catalog, A, seed=15)[0], TOKEN_A)).status_code == 401
    assert (await tenants.post(change_of(catalog, A, seed=16)[0], NEW_TOKEN_A)).status_code == 202


async def test_a_token_of_a_submitting_for_b_is_403_audited_and_not_kept(tenants: Tenants,
                                                                        catalog: Catalog) -> None:
    body, record = change_of(catalog, B)
    response = await tenants.post(body, TOKEN_A)
    assert response.status_code == 403
    assert response.json()["status"] == "forbidden" and response.json()["issues"][0]["code"] == "A403"
    assert await tenants.bus.wait_idle(10)
    trail = await tenants.trail()
    assert [(r.event.event.value, r.event.source, r.event.municipality, r.event.subject) for r in trail] == [
        ("forbidden", "jumin-a", B, None)]
    text = trail_text(trail)
    assert not [v for v in personal_values([record]) if v in text]
    assert tenants.bus.state.counters("source") == {"jumin-a": {"forbidden": 1}}
    assert tenants.received == {}  # not published: nobody of A or B received it
    assert tenants.bus.state.rejected() == []  # nor kept in the rejected store


def _broken(body: bytes, how: str) -> bytes:
    """`body` made invalid at one step of validation (DESIGN §3)."""
    if how == "schema":  # XSD: a required element gone
        start, end = body.index(b"<history_number>"), body.index(b"</history_number>") + len(b"</history_number>")
        return body[:start] + body[end:]
    if how == "rules":  # schema-valid, but 個人番号's check digit is wrong
        start = body.index(b"<personal_number>") + len(b"<personal_number>")
        digit = body[start + 11: start + 12]
        return body[:start + 11] + (b"0" if digit != b"0" else b"1") + body[start + 12:]
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["schema", "rules"])
async def test_an_invalid_change_of_b_from_as_token_is_403_not_kept(tenants: Tenants, catalog: Catalog,
                                                                    how: str) -> None:
    """Invalid is no reason to keep another municipality's data: the municipality code still
    reads, so the refusal comes first (before, this was a 422 and B's change sat in A's
    rejected store, with its issues told to A)."""
    body, record = change_of(catalog, B, seed=7)
    response = await tenants.post(_broken(body, how), TOKEN_A)
    assert response.status_code == 403, response.text
    assert response.json()["issues"][0]["code"] == "A403"
    trail = await tenants.trail()
    assert [(r.event.event.value, r.event.source, r.event.municipality) for r in trail] == [
        ("forbidden", "jumin-a", B)]
    assert not [v for v in personal_values([record]) if v in trail_text(trail) + response.text]
    assert tenants.bus.state.rejected() == []
    assert tenants.bus.state.counters("source") == {"jumin-a": {"forbidden": 1}}


@pytest.mark.parametrize("how", ["schema", "rules"])
async def test_an_invalid_change_of_the_sources_own_municipality_is_422_and_kept(
        tenants: Tenants, catalog: Catalog, how: str) -> None:
    body, _ = change_of(catalog, A, seed=8)
    response = await tenants.post(_broken(body, how), TOKEN_A)
    assert response.status_code == 422, response.text
    assert [r.event.event.value for r in await tenants.trail()] == ["rejected"]
    assert len(tenants.bus.state.rejected()) == 1


async def test_an_unreadable_municipality_code_is_422_and_kept(tenants: Tenants, catalog: Catalog) -> None:
    """No municipality to check the source against: an ordinary rejection, kept for A's operators."""
    body, _ = change_of(catalog, B, seed=9)
    body = body.replace(f"<municipality_code>{B}</municipality_code>".encode(),
                        b"<municipality_code>27100X</municipality_code>")
    response = await tenants.post(body, TOKEN_A)
    assert response.status_code == 422, response.text
    assert [r.event.event.value for r in await tenants.trail()] == ["rejected"]


async def test_a_token_cannot_speak_for_another_source(tenants: Tenants, catalog: Catalog) -> None:
    body, _ = change_of(catalog, A)
    response = await tenants.post(body, TOKEN_A, **{"X-Renkei-Source": "jumin-b"})
    assert response.status_code == 403
    assert [r.event.event.value for r in await tenants.trail()] == ["forbidden"]


async def test_each_source_submits_for_its_own_municipality(tenants: Tenants, catalog: Catalog) -> None:
    """A's token for A's change and B's (configured as a hash) for B's: both accepted, each
    change delivered to its own municipality's destinations only."""
    (body_a, _), (body_b, _) = change_of(catalog, A), change_of(catalog, B, seed=2)
    assert (await tenants.post(body_a, TOKEN_A)).status_code == 202
    assert (await tenants.post(body_b, TOKEN_B)).status_code == 202
    assert await tenants.bus.wait_idle(20)
    assert tenants.delivered(f"zei-{A}") == [A] and tenants.delivered(f"zei-{B}") == [B]
    assert tenants.delivered(f"kokuho-{A}") == [A]
    accepted = [r.event for r in await tenants.trail() if r.event.event.value == "accepted"]
    assert sorted((e.source, e.municipality) for e in accepted) == [("jumin-a", A), ("jumin-b", B)]


async def test_a_careless_route_cannot_deliver_bs_change_to_as_destination(tenants: Tenants,
                                                                          catalog: Catalog) -> None:
    """Route kokuho-direct names kokuho-131016 with no municipality filter: B's change is
    refused at the delivery boundary (audited `refused`, A410), while zei, a route to the
    system, reaches B's own zei destination."""
    body, record = change_of(catalog, B, seed=3)
    assert (await tenants.post(body, TOKEN_B)).status_code == 202
    assert await tenants.bus.wait_idle(20)
    assert tenants.delivered(f"kokuho-{A}") == [] and tenants.delivered(f"zei-{A}") == []
    assert tenants.delivered(f"zei-{B}") == [B] and tenants.delivered(f"kokuho-{B}") == [B]
    refused = [r.event for r in await tenants.trail() if r.event.event.value == "refused"]
    assert [(e.destination, e.route, e.municipality, e.codes) for e in refused] == [
        (f"kokuho-{A}", "kokuho-direct", B, ("A410",))]
    assert not [v for v in personal_values([record]) if v in trail_text(await tenants.trail())]
    assert tenants.bus.state.counters("destination")[f"kokuho-{A}"]["refused"] == 1


async def test_a_change_put_into_as_queue_by_hand_is_dead_lettered_not_delivered(tenants: Tenants,
                                                                                 catalog: Catalog) -> None:
    """Around the router (a hand-published or replayed message): the sink guard dead-letters it."""
    record = change_of(catalog, B, seed=4)[1]
    projection = catalog.get("kokuho.jumin")
    xml = projection.to_xml({f.name: record.get(f.name) for f in projection.fields})
    envelope = Envelope("f" * 32, "kokuho.jumin", 1, "application/xml", B, "jumin-b", "e" * 32, 1,
                        destination=f"kokuho-{A}", route="kokuho-direct")
    queue = destination_queue(f"kokuho-{A}")
    await tenants.bus.broker.publish(queue, OutgoingMessage(xml, envelope.idempotency_key, envelope.subject,
                                                            envelope.to_headers()))
    assert await tenants.bus.wait_idle(20)
    assert tenants.delivered(f"kokuho-{A}") == []
    dead = [r.event for r in await tenants.trail() if r.event.event.value == "dead_lettered"]
    assert len(dead) == 1 and "A410" in (dead[0].reason or "")


async def test_an_inbox_speaks_for_its_source_only(tenants: Tenants, catalog: Catalog, tmp_path: Path) -> None:
    """A file of B's municipality in A's inbox is rejected (A403) and audited; A's own is taken."""
    settings = tenants.bus.settings
    inbox = settings.sources["jumin-a"].inbox
    assert inbox is not None
    inbox.mkdir(parents=True)
    (inbox / "1-own.xml").write_bytes(change_of(catalog, A, seed=5)[0])
    (inbox / "2-other.xml").write_bytes(change_of(catalog, B, seed=6)[0])
    results = await DirectorySource(inbox, tenants.bus.intake, source="jumin-a").run_once()
    assert [(r.name, r.status) for r in results] == [("1-own.xml", "processed"), ("2-other.xml", "rejected")]
    assert results[1].detail["issues"][0]["code"] == "A403"
    events = [(r.event.event.value, r.event.source, r.event.municipality) for r in await tenants.trail()]
    assert ("forbidden", "jumin-a", B) in events and ("accepted", "jumin-a", A) in events
