"""The state and delivery store contract (bus.store_protocols): one suite, every backend.

A subclass gives `location`: (`[state] store` or None, the state directory) naming a fresh,
empty place; stores are opened from it the way the bus opens them (bus.state_backends), so
two stores opened on one location are two processes' views of the same state.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bus.delivery.store import DeadFilter, DeliverySnapshot
from bus.state import StateSnapshot
from bus.state_backends import delivery_snapshot, open_delivery, open_state, state_snapshot
from bus.store_protocols import DeliveryStoreProtocol, StateStoreProtocol
from bus.validation.issues import Issue

Location = tuple[str | None, Path]
Open = Callable[[], StateStoreProtocol]
OpenDelivery = Callable[[], DeliveryStoreProtocol]

HEADERS = {"x-renkei-municipality": "131016", "x-renkei-sequence": 3}


def _count_in_a_process(store: str | None, directory: str, bumps: int) -> None:
    state = open_state(store, Path(directory) / "state.sqlite")
    for _ in range(bumps):
        state.count("destination", "zei", "applied")
    state.count_many([("destination", "zei", "applied")] * bumps)
    state.close()


class StateStoreContract:
    @pytest.fixture
    def location(self) -> Location:
        raise NotImplementedError

    @pytest.fixture
    def open_store(self, location: Location) -> Iterator[Open]:
        opened: list[StateStoreProtocol] = []

        def make() -> StateStoreProtocol:
            opened.append(open_state(location[0], location[1] / "state.sqlite"))
            return opened[-1]

        yield make
        for store in opened:
            store.close()

    def test_a_message_marked_seen_is_seen_by_every_process_and_marking_it_again_is_harmless(
            self, open_store: Open) -> None:
        one, other = open_store(), open_store()
        assert not other.is_seen("m-1")
        one.mark_seen("m-1", "jumin.idou")
        one.mark_seen("m-1", "jumin.idou")
        assert other.is_seen("m-1") and not other.is_seen("m-2")
        assert other.current().seen == 1

    def test_a_batch_of_accepted_messages_is_marked_seen_at_once(self, open_store: Open) -> None:
        store = open_store()
        store.mark_seen("m-1", "jumin.idou")
        store.mark_seen_many([("m-1", "jumin.idou"), ("m-2", "jumin.idou"), ("m-3", "portal.shinsei")])
        assert all(open_store().is_seen(m) for m in ("m-1", "m-2", "m-3"))
        assert store.current().seen == 3
        many = [f"m-{n}" for n in range(1, 1200)]  # the intake's batch lookup, beyond 500 placeholders
        assert open_store().seen_among(many) == {"m-1", "m-2", "m-3"}
        assert store.seen_among([]) == set()

    def test_routing_a_message_marks_it_routed_and_counts_one_per_destination(self, open_store: Open) -> None:
        store = open_store()
        store.record_routed_many([("m-1", ["zei", "kokuho"]), ("m-2", ["zei"])])
        store.record_routed("m-1", ["zei", "kokuho"])  # a redelivery: marked already, counted again
        store.mark_routed("m-3", 0)
        assert store.is_routed("m-1") and store.is_routed("m-2") and store.is_routed("m-3")
        assert not store.is_routed("m-4")
        many = [f"m-{n}" for n in range(1, 1200)]  # beyond one query's 500 placeholders
        assert open_store().routed_among(many) == {"m-1", "m-2", "m-3"}
        assert store.routed_among([]) == set()
        assert store.counters("destination") == {"zei": {"routed": 3}, "kokuho": {"routed": 2}}

    def test_counters_sum_every_bump_per_scope_name_and_counter(self, open_store: Open) -> None:
        store = open_store()
        store.count("source", "jumin", "accepted")
        store.count("source", "jumin", "accepted", by=4)
        store.count_many([("source", "jumin", "rejected"), ("source", "jumin", "accepted"),
                          ("token", "t1", "used")])
        assert store.counters("source") == {"jumin": {"accepted": 6, "rejected": 1}}
        assert store.counters("token") == {"t1": {"used": 1}}
        assert store.counters("destination") == {}

    def test_rejected_messages_are_kept_with_their_codes_and_issues_newest_first(self, open_store: Open) -> None:
        store = open_store()
        issue = Issue(code="V200", message="not valid", path="/a/b")
        first = store.add_rejected(b"<a/>", source="jumin", content_type="application/xml", kind=None,
                                   issues=[issue])
        second = store.add_rejected(b"<b/>", source="files", content_type="application/xml", kind="jumin.idou",
                                    issues=[issue, Issue(code="V100", message="too big")])
        assert second > first > 0
        newest, oldest = store.rejected()
        assert (newest.id, newest.source, newest.kind, newest.codes) == (second, "files", "jumin.idou",
                                                                          ["V100", "V200"])
        assert (oldest.id, oldest.kind, oldest.codes) == (first, None, ["V200"])
        assert oldest.issues[0]["code"] == "V200"
        assert store.current().rejected == 2

    def test_the_snapshot_read_from_outside_is_the_stores_own_and_none_before_any_use(
            self, location: Location, open_store: Open) -> None:
        assert state_snapshot(location[0], location[1] / "state.sqlite") is None
        store = open_store()
        assert state_snapshot(location[0], location[1] / "state.sqlite") == StateSnapshot()
        store.mark_seen("m-1", "jumin.idou")
        store.count("destination", "zei", "applied", by=2)
        snapshot = state_snapshot(location[0], location[1] / "state.sqlite")
        assert snapshot == store.current() == StateSnapshot({"destination": {"zei": {"applied": 2}}}, 1, 0)

    def test_processes_counting_at_once_lose_no_bump(self, location: Location, open_store: Open) -> None:
        open_store()  # created before the processes race
        context = multiprocessing.get_context("spawn")
        workers = [context.Process(target=_count_in_a_process, args=(location[0], str(location[1]), 50))
                   for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
            assert worker.exitcode == 0
        assert open_store().counters("destination") == {"zei": {"applied": 300}}


class DeliveryStoreContract:
    @pytest.fixture
    def location(self) -> Location:
        raise NotImplementedError

    @pytest.fixture
    def open_store(self, location: Location) -> Iterator[OpenDelivery]:
        opened: list[DeliveryStoreProtocol] = []

        def make() -> DeliveryStoreProtocol:
            opened.append(open_delivery(location[0], location[1] / "delivery.sqlite"))
            return opened[-1]

        yield make
        for store in opened:
            store.close()

    def _dead(self, store: DeliveryStoreProtocol, subject: str = "s1", *, municipality: str = "131016",
              destination: str = "zei", code: str = "D100", message_id: str = "m-1") -> int:
        return store.add_dead(destination=destination, subject=subject, municipality=municipality,
                              message_id=message_id, sequence=1, code=code, reason="refused: " + "x" * 600,
                              attempts=3, first_failed=1000.0, headers=dict(HEADERS), body=b"<jumin/>")

    def test_a_parked_resident_is_seen_by_every_process_with_its_head_and_status(
            self, open_store: OpenDelivery) -> None:
        one, other = open_store(), open_store()
        one.park("zei", "s1", "m-1", "retrying")
        one.park("kokuho", "s2", "m-5", "retrying")
        one.park("zei", "s1", "m-2", "releasing")  # the same resident: head and status move
        parked = other.parked("zei", "s1")
        assert parked is not None and (parked.head, parked.status) == ("m-2", "releasing")
        assert other.parked("zei", "s2") is None
        assert [p.subject for p in other.parked_all("zei")] == ["s1"]
        assert [p.subject for p in other.parked_all(status="retrying")] == ["s2"]
        assert len(other.parked_all()) == 2
        among = other.parked_among("zei", ["s2", "s1", *(f"x{n}" for n in range(1200))])
        assert list(among) == ["s1"] and (among["s1"].head, among["s1"].status) == ("m-2", "releasing")
        assert other.parked_among("kokuho", ["s1"]) == {} and other.parked_among("zei", []) == {}

    def test_a_change_is_held_only_behind_a_parked_resident_and_comes_back_in_sequence_order(
            self, open_store: OpenDelivery) -> None:
        store, other = open_store(), open_store()
        assert not store.hold("zei", "s1", 2, "m-2", dict(HEADERS), b"two")
        store.park("zei", "s1", "m-1", "retrying")
        assert store.hold("zei", "s1", 3, "m-3", dict(HEADERS), b"three")
        assert store.hold("zei", "s1", 2, "m-2", dict(HEADERS), b"two")
        assert store.hold("zei", "s1", 2, "m-2", dict(HEADERS), b"two")  # held twice: kept once
        assert other.held_counts() == {"zei": (1, 2)}
        first = other.next_held("zei", "s1")
        assert first is not None and (first.sequence, first.message_id, first.body) == (2, "m-2", b"two")
        assert first.headers == HEADERS
        assert not other.unpark_if_drained("zei", "s1")  # something is held: stays parked
        other.drop_held(first.id)
        second = other.next_held("zei", "s1")
        assert second is not None and second.message_id == "m-3"
        other.drop_held(second.id)
        assert other.next_held("zei", "s1") is None
        assert other.unpark_if_drained("zei", "s1")
        assert store.parked("zei", "s1") is None

    def test_a_dead_letter_parks_its_resident_and_keeps_the_message_and_its_municipality(
            self, open_store: OpenDelivery) -> None:
        store, other = open_store(), open_store()
        dead_id = self._dead(store)
        letter = other.dead(dead_id)
        assert letter is not None
        assert (letter.destination, letter.subject, letter.municipality, letter.code) == ("zei", "s1", "131016", "D100")
        assert (letter.body, letter.headers, letter.attempts, letter.state) == (b"<jumin/>", HEADERS, 3, "dead")
        assert len(letter.reason) == 500  # a long reason is cut, not refused
        parked = other.parked("zei", "s1")
        assert parked is not None and (parked.head, parked.status) == ("m-1", "dead")
        assert other.dead(dead_id + 1000) is None

    def test_dead_letters_are_listed_by_destination_municipality_code_and_state(
            self, open_store: OpenDelivery) -> None:
        store = open_store()
        a = self._dead(store, "s1")
        b = self._dead(store, "s2", municipality="132012", code="D200", message_id="m-2")
        c = self._dead(store, "s3", destination="kokuho", message_id="m-3")
        assert [d.id for d in store.dead_list()] == [a, b, c]
        assert [d.id for d in store.dead_list(DeadFilter(municipality="132012"))] == [b]
        assert [d.id for d in store.dead_list(DeadFilter(destination="zei", code="D100"))] == [a]
        assert [d.id for d in store.dead_list(limit=2)] == [a, b]
        assert store.dead_counts() == {"zei": 2, "kokuho": 1}
        assert store.resolve_dead(a, "discarded", "ops-sato", "entered twice")
        assert [d.id for d in store.dead_list()] == [b, c]
        assert [d.id for d in store.dead_list(DeadFilter(state="discarded"))] == [a]
        resolved = store.dead(a)
        assert resolved is not None and (resolved.resolved_by, resolved.resolved_reason) == ("ops-sato",
                                                                                           "entered twice")

    def test_a_dead_letter_is_resolved_once_whoever_tries_twice(self, open_store: OpenDelivery) -> None:
        one, other = open_store(), open_store()
        dead_id = self._dead(one)
        assert one.resolve_dead(dead_id, "replayed", "ops-sato", "replayed")
        assert not other.resolve_dead(dead_id, "discarded", "ops-kato", "too late")
        letter = other.dead(dead_id)
        assert letter is not None and (letter.state, letter.resolved_by) == ("replayed", "ops-sato")

    def test_a_done_note_is_seen_by_another_process(self, open_store: OpenDelivery) -> None:
        one, other = open_store(), open_store()
        one.note_done("zei", "m-1")
        one.note_done("zei", "m-1")
        assert other.was_done("zei", "m-1")
        assert not other.was_done("kokuho", "m-1") and not other.was_done("zei", "m-2")

    def test_a_claim_given_back_can_be_taken_again(self, open_store: OpenDelivery) -> None:
        store = open_store()
        assert store.claim("zei", "s1")
        store.unclaim("zei", "s1")
        assert store.claim("zei", "s1")
        store.unclaim("zei", "s1")

    def test_the_snapshot_counts_per_destination_as_the_store_does_and_none_before_any_use(
            self, location: Location, open_store: OpenDelivery) -> None:
        assert delivery_snapshot(location[0], location[1] / "delivery.sqlite") is None
        store = open_store()
        assert delivery_snapshot(location[0], location[1] / "delivery.sqlite") == DeliverySnapshot()
        store.park("zei", "s1", "m-1", "retrying")
        store.hold("zei", "s1", 2, "m-2", dict(HEADERS), b"two")
        self._dead(store, "s2", message_id="m-9")
        snapshot = delivery_snapshot(location[0], location[1] / "delivery.sqlite")
        assert snapshot == store.current()
        assert snapshot is not None
        assert (snapshot.retrying, snapshot.held) == ({"zei": 1}, {"zei": (1, 1)})
        assert [(g.destination, g.code, g.count) for g in snapshot.dead] == [("zei", "D100", 1)]

    def test_a_change_held_while_its_resident_is_released_is_never_stranded(
            self, open_store: OpenDelivery) -> None:
        """Two processes race "hold if parked" against "unpark if nothing is held": one of
        them wins each time, never both (a held change behind an unparked resident)."""
        releaser, holder = open_store(), open_store()

        def release(subject: str, start: threading.Barrier, results: dict[str, bool]) -> None:
            start.wait()
            results["unparked"] = releaser.unpark_if_drained("zei", subject)

        def hold(subject: str, start: threading.Barrier, results: dict[str, bool]) -> None:
            start.wait()
            results["held"] = holder.hold("zei", subject, 2, f"m-{subject}", dict(HEADERS), b"x")

        for i in range(60):
            subject = f"s{i}"
            releaser.park("zei", subject, "m-0", "releasing")
            results: dict[str, bool] = {}
            start = threading.Barrier(2)
            threads = [threading.Thread(target=task, args=(subject, start, results)) for task in (release, hold)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            assert results["unparked"] != results["held"], (subject, results)
            assert (holder.parked("zei", subject) is None) == results["unparked"]
