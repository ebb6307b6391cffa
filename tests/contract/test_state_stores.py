"""The state and delivery store contract (state_cases.py) on SQLite (the default, the files of
a state directory) and on a real PostgreSQL (`[state] store`, each test in a schema of its own)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from state_cases import DeliveryStoreContract, Location, OpenDelivery, StateStoreContract


class TestSqliteStateStore(StateStoreContract):
    @pytest.fixture
    def location(self, tmp_path: Path) -> Location:
        return None, tmp_path / "var"


class TestSqliteDeliveryStore(DeliveryStoreContract):
    @pytest.fixture
    def location(self, tmp_path: Path) -> Location:
        return None, tmp_path / "var"


@pytest.fixture
def pg_location(postgres_url: str, tmp_path: Path) -> Iterator[Location]:
    """A fresh schema of the test server (dropped after the test)."""
    schema = f"state_{uuid.uuid4().hex[:12]}"
    yield f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}", tmp_path / "var"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())


@pytest.mark.postgres
class TestPostgresStateStore(StateStoreContract):
    @pytest.fixture
    def location(self, pg_location: Location) -> Location:
        return pg_location

    def test_nothing_is_written_in_the_state_directory(self, location: Location, open_store: object) -> None:
        store = open_store()  # type: ignore[operator]
        store.mark_seen("m-1", "jumin.idou")
        assert not location[1].exists()


@pytest.mark.postgres
class TestPostgresDeliveryStore(DeliveryStoreContract):
    @pytest.fixture
    def location(self, pg_location: Location) -> Location:
        return pg_location

    def test_a_resident_claimed_by_one_process_cannot_be_claimed_by_another_until_given_back(
            self, open_store: OpenDelivery) -> None:
        one, other = open_store(), open_store()
        assert one.claim("zei", "s1")
        assert not other.claim("zei", "s1")
        assert other.claim("zei", "s2") and other.claim("kokuho", "s1")  # other residents, other places
        one.unclaim("zei", "s1")
        assert other.claim("zei", "s1")

    def test_a_killed_processs_claims_end_with_its_connection(self, open_store: OpenDelivery) -> None:
        one, other = open_store(), open_store()
        assert one.claim("zei", "s1")
        one.close()  # what the server sees of a killed process: its connection ends
        deadline = time.monotonic() + 10  # once its server process has ended (a moment later)
        while not other.claim("zei", "s1"):
            assert time.monotonic() < deadline, "the claim outlived its connection"
            time.sleep(0.05)
