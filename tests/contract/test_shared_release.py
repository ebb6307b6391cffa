"""Releasing a resident with the delivery store shared in PostgreSQL: one process at a time.

A release a killed process left (`releasing`) is finished by the next `resume` of any
process — but never while another process is releasing that resident (its claim)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from bus.delivery.pg_store import PostgresDeliveryStore
from bus.envelope import Envelope
from bus.stages.hooks import StageHooks
from bus.stages.order import Message, ResidentLine

pytestmark = pytest.mark.postgres


@pytest.fixture
def store_url(postgres_url: str) -> Iterator[str]:
    schema = f"release_{uuid.uuid4().hex[:12]}"
    yield f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())


def _left_releasing(store: PostgresDeliveryStore) -> None:
    """What a process killed in mid-release leaves: the resident `releasing`, a change held."""
    envelope = Envelope(message_id="m-2", kind="zei.jumin", schema_version="1", content_type="application/xml",
                        municipality="131016", source="jumin", subject="s1", sequence=2, destination="zei")
    store.park("zei", "s1", "m-1", "releasing")
    assert store.hold("zei", "s1", 2, "m-2", dict(envelope.to_headers()), b"<two/>")


async def test_a_release_left_by_a_killed_process_is_finished_by_another_but_not_while_one_is_at_it(
        store_url: str) -> None:
    killed, other, survivor = (PostgresDeliveryStore(store_url) for _ in range(3))
    passed: list[str] = []

    async def attempt(message: Message) -> bool:
        passed.append(message.envelope.message_id)
        return True

    try:
        _left_releasing(killed)
        assert other.claim("zei", "s1")  # another live process is releasing s1 now
        await ResidentLine(survivor, "zei", StageHooks()).resume(attempt)
        assert passed == [] and survivor.parked("zei", "s1") is not None  # left to it

        other.close()  # that process is killed too: its claim ends with its connection (a moment later)
        line = ResidentLine(survivor, "zei", StageHooks())
        for _ in range(200):  # the next rounds of the periodic resume
            await line.resume(attempt)
            if passed:
                break
            await asyncio.sleep(0.05)
        assert passed == ["m-2"]
        assert survivor.parked("zei", "s1") is None and survivor.next_held("zei", "s1") is None
    finally:
        for store in (killed, other, survivor):
            store.close()


async def test_a_resident_no_longer_releasing_once_claimed_is_not_released_by_a_resumer(store_url: str) -> None:
    """The resident was listed `releasing`, but its owner's attempt failed meanwhile (now
    `retrying`, its head in a delay queue): passing the held change now would overtake it."""
    store = PostgresDeliveryStore(store_url)
    passed: list[str] = []

    async def attempt(message: Message) -> bool:
        passed.append(message.envelope.message_id)
        return True

    class Racing(PostgresDeliveryStore):
        def claim(self, where: str, subject: str) -> bool:
            store.park("zei", "s1", "m-1", "retrying")  # the owner's failure lands just before the claim
            return super().claim(where, subject)

    racing = Racing(store_url)
    try:
        _left_releasing(store)
        await ResidentLine(racing, "zei", StageHooks()).resume(attempt)
        assert passed == []
        parked = store.parked("zei", "s1")
        assert parked is not None and parked.status == "retrying" and store.next_held("zei", "s1") is not None
    finally:
        store.close()
        racing.close()
