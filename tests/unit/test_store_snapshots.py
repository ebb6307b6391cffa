"""Each store answers status with a read-only snapshot of its own tables, and status reads
nothing else: a schema change in a store is made (and tested) beside its snapshot, so it
cannot silently break `renkei status`."""

from __future__ import annotations

import ast
import sqlite3
import time
from pathlib import Path

import pytest

from bus.delivery.store import DeadGroup, DeliverySnapshot, DeliveryStore
from bus.errors import StoreUnreadable
from bus.state import StateSnapshot, StateStore
from bus.topology import StateDir

ROOT = Path(__file__).resolve().parents[2]


def test_the_state_snapshot_holds_the_counters_and_the_seen_and_rejected_counts(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    try:
        store.count("source", "http", "accepted", 3)
        store.count("destination", "zei", "routed")
        store.count("destination", "zei", "routed")
        store.mark_seen("m-1", "jumin.idou")
        store.add_rejected(b"<x/>", source="http", content_type="application/xml", kind=None, issues=[])
        snapshot = StateStore.snapshot(tmp_path / "state.sqlite")
    finally:
        store.close()
    assert snapshot == StateSnapshot(
        {"source": {"http": {"accepted": 3}}, "destination": {"zei": {"routed": 2}}}, seen=1, rejected=1)
    assert snapshot.scope("token") == {}


def test_a_missing_store_file_is_none_and_is_not_created(tmp_path: Path) -> None:
    assert StateStore.snapshot(tmp_path / "state.sqlite") is None
    assert DeliveryStore.snapshot(tmp_path / "delivery.sqlite") is None
    assert list(tmp_path.iterdir()) == []


def test_a_file_without_tables_yet_is_an_empty_snapshot(tmp_path: Path) -> None:
    for name in ("state.sqlite", "delivery.sqlite"):
        sqlite3.connect(tmp_path / name).close()
    assert StateStore.snapshot(tmp_path / "state.sqlite") == StateSnapshot()
    assert DeliveryStore.snapshot(tmp_path / "delivery.sqlite") == DeliverySnapshot()


def test_a_damaged_store_file_raises_store_unreadable_naming_it(tmp_path: Path) -> None:
    for name in ("state.sqlite", "delivery.sqlite"):
        (tmp_path / name).write_bytes(b"not a database " * 100)
    with pytest.raises(StoreUnreadable, match=r"state\.sqlite"):
        StateStore.snapshot(tmp_path / "state.sqlite")
    with pytest.raises(StoreUnreadable, match=r"delivery\.sqlite"):
        DeliveryStore.snapshot(tmp_path / "delivery.sqlite")


def test_the_delivery_snapshot_agrees_with_the_stores_own_counts(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "delivery.sqlite")
    headers = {"municipality": "131016"}
    try:
        before = time.time()
        store.park("zei", "a" * 32, "a-1", "retrying")
        assert store.hold("zei", "a" * 32, 2, "a-2", headers, b"<b/>")
        assert store.hold("zei", "a" * 32, 3, "a-3", headers, b"<b/>")
        for destination, subject, code in (("zei", "b" * 32, "D100"), ("kokuho", "c" * 32, "D200"),
                                           ("kokuho", "d" * 32, "D200"), ("kokuho", "e" * 32, "D100")):
            store.add_dead(destination=destination, subject=subject, municipality="131016", message_id=subject[:4],
                           sequence=1, code=code, reason="refused", attempts=2, first_failed=before,
                           headers=headers, body=b"<b/>")
        replayed = store.dead_list()[-1]
        assert store.resolve_dead(replayed.id, "replayed", "ops", "fixed")
        snapshot = DeliveryStore.snapshot(tmp_path / "delivery.sqlite")
        held, dead = store.held_counts(), store.dead_counts()
    finally:
        store.close()
    assert snapshot is not None
    assert snapshot.retrying == {"zei": 1, "kokuho": 0}  # dead-parked residents wait on an operator
    assert set(snapshot.parked_since) == {"zei", "kokuho"} and snapshot.parked_since["zei"] >= before
    assert snapshot.held == held == {"zei": (1, 2)}
    assert sorted((g.destination, g.code, g.count) for g in snapshot.dead) == [
        ("kokuho", "D200", 2), ("zei", "D100", 1)]
    assert {d: sum(g.count for g in snapshot.dead if g.destination == d) for d in dead} == dead
    assert all(isinstance(g, DeadGroup) and g.oldest >= before for g in snapshot.dead)
    assert snapshot.destinations() == {"zei", "kokuho"}


def test_the_state_dir_names_each_file_and_reads_each_snapshot(tmp_path: Path) -> None:
    state_dir = StateDir(tmp_path)
    assert [p.name for p in (state_dir.state_file, state_dir.delivery_file, state_dir.broker_file,
                             state_dir.audit_file, state_dir.processes_dir)] == [
        "state.sqlite", "delivery.sqlite", "broker.sqlite", "audit.sqlite", "processes"]
    state_dir.open_state().close()
    state_dir.open_delivery().close()
    assert state_dir.state_snapshot() == StateSnapshot()
    assert state_dir.delivery_snapshot() == DeliverySnapshot()


def _imports_and_calls(path: Path) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules: set[str] = set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Name):
            names.add(node.id)
    return modules, names


@pytest.mark.parametrize("path", sorted((ROOT / "bus" / "status").glob("*.py")), ids=lambda p: p.name)
def test_status_reads_stores_only_through_their_snapshots(path: Path) -> None:
    """No SQLite, no SQL, no backend: a store's tables are its own business."""
    modules, names = _imports_and_calls(path)
    assert "sqlite3" not in modules
    assert not {m for m in modules if m.startswith("bus.brokers.") and m != "bus.brokers.base"}
    assert not {"execute", "executemany", "EmbeddedBroker", "AmqpBroker", "LEASED"} & names
    assert "SELECT" not in path.read_text(encoding="utf-8")


def test_no_module_but_the_topology_names_a_state_file_or_a_queue() -> None:
    """bus.topology is the one place that names a state file or a queue."""
    offenders = []
    for path in sorted([*(ROOT / "bus").rglob("*.py"), *(ROOT / "adapters").rglob("*.py")]):
        if path.name == "topology.py":
            continue
        text = path.read_text(encoding="utf-8")
        for name in ('"state.sqlite"', '"delivery.sqlite"', '"broker.sqlite"', '"audit.sqlite"', '"renkei.submit"',
                     '"renkei.intake"', '"renkei.dest.'):
            if name in text:
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_snapshots_of_several_workers_add_up() -> None:
    router = StateSnapshot({"destination": {"zei": {"routed": 4}}}, seen=4)
    deliverer = StateSnapshot({"destination": {"zei": {"applied": 3, "routed": 1}}, "source": {"http": {"x": 1}}})
    assert router.plus(deliverer) == StateSnapshot(
        {"destination": {"zei": {"routed": 5, "applied": 3}}, "source": {"http": {"x": 1}}}, seen=4)
    assert router.counters == {"destination": {"zei": {"routed": 4}}}  # neither is changed
    tax = DeliverySnapshot({"zei": 1}, {"zei": 100.0}, {"zei": (1, 2)}, [DeadGroup("zei", "D100", 1, 90.0)])
    welfare = DeliverySnapshot({"zei": 2}, {"zei": 50.0}, {"zei": (1, 1)}, [DeadGroup("nenkin", "D200", 2, 80.0)])
    both = tax.plus(welfare)
    assert (both.retrying, both.parked_since, both.held) == ({"zei": 3}, {"zei": 50.0}, {"zei": (2, 3)})
    assert both.dead == [*tax.dead, *welfare.dead] and tax.retrying == {"zei": 1}
