"""The audit store contract: one suite, every store (SQLite, PostgreSQL).

A subclass gives `make_store` (a fresh, empty trail), `query` (runs SQL on that trail's
tables through a connection of its own and returns the rows), `tamper` (the same as someone
with the database owner's rights would, the append-only triggers bypassed) and
`store_location` (how another process opens the same trail).
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.audit import AuditEvent, AuditLog, AuditStore, CheckpointSigner, CheckpointVerifier, EventType, verify
from bus.audit.backends import open_store
from bus.audit.chain import link
from bus.audit.store import COLUMNS
from bus.audit.witness import Witness
from bus.envelope import Envelope
from bus.masking import Pseudonymizer

MakeStore = Callable[[], AuditStore]
Tamper = Callable[[str, tuple[Any, ...]], None]
Query = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]

KEY = b"contract-test-pseudonym-key-0001"
MUNICIPALITY = "131016"
ADDRESS_NUMBER = "000123456789"
PERSONAL_NUMBER = "123456789018"


def subject(address_number: str = ADDRESS_NUMBER) -> str:
    return Pseudonymizer(KEY).subject(MUNICIPALITY, address_number)


def envelope(history: int = 1, address_number: str = ADDRESS_NUMBER) -> Envelope:
    p = Pseudonymizer(KEY)
    return Envelope(message_id=p.message_id(MUNICIPALITY, address_number, history), kind="jumin.idou",
                    schema_version=1, content_type="application/xml", municipality=MUNICIPALITY,
                    source="jumin", subject=p.subject(MUNICIPALITY, address_number), sequence=history)


def life(history: int = 1, address_number: str = ADDRESS_NUMBER) -> list[AuditEvent]:
    """A message's events: received, accepted, routed and delivered to two systems."""
    env = envelope(history, address_number)
    zei = env.for_destination("zei", "zei.jumin", 1, "zei-all", None)
    kokuho = env.for_destination("kokuho", "kokuho.jumin", 1, "kokuho-household", "番号法第9条別表第一の三十")
    return [
        AuditEvent.of(EventType.RECEIVED, env),
        AuditEvent.of(EventType.ACCEPTED, env),
        AuditEvent.of(EventType.ROUTED, zei),
        AuditEvent.of(EventType.ROUTED, kokuho),
        AuditEvent.of(EventType.DELIVERED, zei, receipt="zei-r-1"),
        AuditEvent.of(EventType.RETRIED, kokuho, attempt=1, reason="HTTP 503"),
        AuditEvent.of(EventType.DELIVERED, kokuho, receipt="kokuho-r-1"),
    ]


def signer() -> CheckpointSigner:
    return CheckpointSigner(Ed25519PrivateKey.generate())


def verifier_of(s: CheckpointSigner) -> CheckpointVerifier:
    return CheckpointVerifier([s.public_key])


def write_format_1(path: Path, groups: list[list[AuditEvent]], signer_pem: Path, every: int) -> None:
    """A trail as a bus before format 2 wrote it: format-1 hashes, signed every `every` records."""
    import sqlite3

    from bus.audit.chain import GENESIS, AuditRecord, legacy_hash
    from bus.audit.store import _row

    open_store(path).close()
    signer = CheckpointSigner.from_pem(signer_pem.read_bytes())
    seq, prev = 0, GENESIS
    for event in [e for group in groups for e in group]:
        seq += 1
        record = AuditRecord(seq, prev, legacy_hash(seq, prev, event), event)
        db = sqlite3.connect(path, isolation_level=None)
        db.execute(f"INSERT INTO audit_records VALUES ({', '.join('?' for _ in _row(record))})", _row(record))
        db.execute("UPDATE audit_head SET seq = ?, hash = ?", (seq, record.hash))
        db.close()
        prev = record.hash
        if seq % every == 0:
            with open_store(path) as store:
                store.add_checkpoint(signer)


def append_worker(location: str, options: dict[str, Any], worker: int, rounds: int, pem: bytes,
                  start: Any) -> None:
    """A process appending `rounds` small batches (1–3 events) as fast as it can."""
    store = open_store(location, **options)
    log = AuditLog(store, CheckpointSigner.from_pem(pem), checkpoint_every=25)
    start.wait(30)
    for i in range(rounds):
        env = envelope(i + 1, f"9{worker:03d}")
        log.append([AuditEvent.of(EventType.ROUTED, env, reason=f"worker {worker} round {i}")] * (1 + i % 3))
    store.close()


class AuditStoreContract:
    """What every audit store does; subclasses supply the fixtures."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        raise NotImplementedError

    @pytest.fixture
    def tamper(self) -> Tamper:
        raise NotImplementedError

    @pytest.fixture
    def query(self) -> Query:
        raise NotImplementedError

    @pytest.fixture
    def store_location(self) -> tuple[str, dict[str, Any]]:
        """How another process opens the same trail: open_store(location, **options)."""
        raise NotImplementedError

    @pytest.fixture
    def witness(self) -> Witness:
        """A fresh witness of the kind this backend pairs with (a file, a PostgreSQL table)."""
        raise NotImplementedError

    # -- appending and reading back --------------------------------------------------------
    def test_appended_events_come_back_chained_in_order(self, make_store: MakeStore) -> None:
        """Each record names its predecessor's hash; reading gives back exactly what was appended."""
        store = make_store()
        events = life()
        records = store.append(events)
        assert [r.seq for r in records] == list(range(1, len(events) + 1))
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
        stored = list(store.records())
        assert [r.event for r in stored] == events
        assert [r.hash for r in stored] == [r.hash for r in records]
        assert store.head().seq == len(events) and store.head().hash == records[-1].hash
        assert verify(store).ok

    def test_try_append_appends_as_append_does_or_writes_nothing(self, make_store: MakeStore) -> None:
        """The recorder's inline path ([bus] inline_writes): a store either appends at once, the
        same chain as `append` would make, or answers None having written nothing (PostgreSQL
        always answers None: its appends stay in the recorder's thread)."""
        store = make_store()
        one, two = life(1), life(2)
        first = store.append(one)
        tried = store.try_append(two)
        if tried is None:
            assert store.head().seq == len(first)
            tried = store.append(two)
        assert tried[0].prev_hash == first[-1].hash and tried[0].seq == first[-1].seq + 1
        assert [r.event for r in store.records()] == one + two
        assert store.try_append([]) == []
        assert verify(store).ok

    def test_an_empty_trail_verifies(self, make_store: MakeStore) -> None:
        """Nothing appended yet: verify is OK with zero records."""
        report = verify(make_store())
        assert report.ok and report.records == 0

    def test_appends_continue_the_chain(self, make_store: MakeStore) -> None:
        """A second append links to the first one's last record."""
        store = make_store()
        first = store.append(life(1))
        second = store.append(life(2))
        assert second[0].prev_hash == first[-1].hash and second[0].seq == first[-1].seq + 1
        assert verify(store).ok

    def test_a_message_life_is_found_by_its_id(self, make_store: MakeStore) -> None:
        """by_message returns every event of that message and nothing of another."""
        store = make_store()
        store.append(life(1) + life(2))
        found = store.by_message(envelope(1).message_id)
        assert [r.event.event for r in found] == [e.event for e in life(1)]

    def test_records_of_a_resident_are_found_by_pseudonym(self, make_store: MakeStore) -> None:
        """by_subjects filters by pseudonym, event type, municipality and time."""
        store = make_store()
        store.append(life(1) + life(1, "000999"))
        delivered = store.by_subjects([subject()], events=(EventType.DELIVERED,))
        assert [r.event.destination for r in delivered] == ["zei", "kokuho"]
        assert store.by_subjects([subject()], municipality="011002") == []
        assert store.by_subjects([subject()], since="9999-01-01T00:00:00+00:00") == []
        assert store.municipalities() == [MUNICIPALITY]

    def test_a_life_and_a_trail_written_out_of_order_come_back_in_the_order_they_happened(
            self, make_store: MakeStore) -> None:
        """With the bus in several processes each writes its own batches: the router's `routed`
        (and one deliverer's `delivered`) can be stored before the intake's `received`, or before
        another deliverer's earlier `delivered`. by_message and by_subjects give them by time
        (then seq, for one instant); the chain stays in write order and verifies."""
        events = [replace(e, at=f"2026-12-06T10:00:00.{i:06d}+00:00") for i, e in enumerate(life(1))]
        received, accepted, routed_zei, routed_kokuho, delivered_zei, retried, delivered_kokuho = events
        store = make_store()
        store.append([routed_zei, routed_kokuho, delivered_kokuho])  # the router's and one deliverer's
        store.append([received, accepted])  # the intake's batch lands last but one
        store.append([delivered_zei, retried])
        assert verify(store).ok
        assert [r.event for r in store.by_message(received.message_id or "")] == events
        trail = store.by_subjects([subject()], events=(EventType.DELIVERED,))
        assert [r.event.destination for r in trail] == ["zei", "kokuho"]  # oldest first, as written: kokuho
        same = [replace(e, at="2026-12-06T10:00:00.000000+00:00") for e in life(2)]
        store.append(same)  # one instant (the clock's resolution): as written
        assert [r.event for r in store.by_message(same[0].message_id or "")] == same

    def test_the_tables_refuse_to_update_or_delete_records(self, make_store: MakeStore, query: Query) -> None:
        """UPDATE and DELETE of records fail (append-only) unless someone drops the guard first."""
        store = make_store()
        store.append(life())
        with pytest.raises(Exception, match="append-only"):
            query("DELETE FROM audit_records", ())
        with pytest.raises(Exception, match="append-only"):
            query("UPDATE audit_records SET destination = 'x'", ())
        assert len(list(store.records())) == len(life())

    # -- tampering -------------------------------------------------------------------------
    def test_an_altered_record_is_named(self, make_store: MakeStore, tamper: Tamper) -> None:
        """Changing one field of record 4 makes verify name record 4 as altered."""
        store = make_store()
        store.append(life())
        tamper("UPDATE audit_records SET destination = ? WHERE seq = ?", ("nenkin", 4))
        report = verify(store)
        assert not report.ok
        assert report.first is not None and report.first.seq == 4
        assert "altered" in report.first.what

    def test_a_removed_record_is_named(self, make_store: MakeStore, tamper: Tamper) -> None:
        """Deleting record 3 makes verify name record 3 as missing."""
        store = make_store()
        store.append(life())
        tamper("DELETE FROM audit_records WHERE seq = ?", (3,))
        report = verify(store)
        assert report.first is not None and report.first.seq == 3
        assert "missing" in report.first.what

    def test_records_removed_from_the_end_are_named(self, make_store: MakeStore, tamper: Tamper) -> None:
        """Deleting the last two records: the head still says 7, so record 6 is missing."""
        store = make_store()
        store.append(life())
        tamper("DELETE FROM audit_records WHERE seq >= ?", (6,))
        report = verify(store)
        assert report.first is not None and report.first.seq == 6
        assert "missing" in report.first.what

    def test_a_removed_and_renumbered_record_is_named(self, make_store: MakeStore, tamper: Tamper) -> None:
        """Deleting record 3 and renumbering the rest: record 3 (formerly 4) does not follow record 2."""
        store = make_store()
        store.append(life())
        tamper("DELETE FROM audit_records WHERE seq = ?", (3,))
        for seq in range(4, 8):
            tamper("UPDATE audit_records SET seq = ? WHERE seq = ?", (seq - 1, seq))
        tamper("UPDATE audit_head SET seq = ? WHERE id = 1", (6,))
        report = verify(store)
        assert report.first is not None and report.first.seq == 3
        assert "does not follow record 2" in report.first.what

    def test_reordered_records_are_named(self, make_store: MakeStore, tamper: Tamper) -> None:
        """Swapping records 4 and 5 makes verify name record 4 first."""
        store = make_store()
        store.append(life())
        tamper("UPDATE audit_records SET seq = ? WHERE seq = ?", (-5, 5))
        tamper("UPDATE audit_records SET seq = ? WHERE seq = ?", (5, 4))
        tamper("UPDATE audit_records SET seq = ? WHERE seq = ?", (4, -5))
        report = verify(store)
        assert report.first is not None and report.first.seq == 4
        assert "does not follow record 3" in report.first.what

    def test_a_consistently_rewritten_chain_is_caught_by_its_checkpoint(self, make_store: MakeStore,
                                                                        tamper: Tamper) -> None:
        """Altering record 2 and recomputing every later hash passes the chain check, not the checkpoint."""
        store = make_store()
        key = signer()
        store.append(life(), key, checkpoint_every=7)
        assert [c.seq for c in store.checkpoints()] == [7]
        records = list(store.records())
        forged = link(_head_before(records[1]), [replace(r.event, destination="nenkin") if r.seq == 2 else r.event
                                                  for r in records[1:]])
        for record in forged:
            tamper("UPDATE audit_records SET destination = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                   (record.event.destination, record.prev_hash, record.hash, record.seq))
        tamper("UPDATE audit_head SET hash = ? WHERE id = 1", (forged[-1].hash,))
        report = verify(store, verifier_of(key))
        assert [p.seq for p in report.problems] == [7]
        assert "rewritten" in report.problems[0].what

    def test_records_cut_off_after_a_checkpoint_are_caught(self, make_store: MakeStore, tamper: Tamper) -> None:
        """Deleting the tail and moving the head back still leaves the signed checkpoint pointing past it."""
        store = make_store()
        key = signer()
        store.append(life(), key, checkpoint_every=7)
        tamper("DELETE FROM audit_records WHERE seq >= ?", (5,))
        records = list(store.records())
        tamper("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (4, records[-1].hash))
        report = verify(store, verifier_of(key))
        assert report.first is not None and report.first.seq == 7
        assert "missing" in report.first.what

    def test_a_forged_checkpoint_signature_is_detected(self, make_store: MakeStore, tamper: Tamper) -> None:
        """A checkpoint whose signature was replaced does not verify."""
        store = make_store()
        key = signer()
        store.append(life(), key, checkpoint_every=7)
        forged = signer().sign(store.head())
        tamper("UPDATE audit_checkpoints SET signature = ? WHERE seq = ?", (forged.signature, 7))
        report = verify(store, verifier_of(key))
        assert report.first is not None and report.first.seq == 7
        assert "does not verify" in report.first.what

    def test_a_checkpoint_by_an_unknown_key_is_detected(self, make_store: MakeStore) -> None:
        """A checkpoint signed by a key the verifier does not trust is reported."""
        store = make_store()
        store.append(life(), signer(), checkpoint_every=7)
        report = verify(store, verifier_of(signer()))
        assert report.first is not None and "not a trusted key" in report.first.what

    def test_checkpoints_are_written_every_n_records_and_on_demand(self, make_store: MakeStore) -> None:
        """checkpoint_every=5: appends of 7 cross 5 and 10, so heads 7 and 14 are signed; add_checkpoint
        signs the head now, once."""
        store = make_store()
        key = signer()
        for _ in range(2):
            store.append(life(), key, checkpoint_every=5)
        assert [c.seq for c in store.checkpoints()] == [7, 14]
        assert store.add_checkpoint(key) is None  # the head is already signed
        store.append(life()[:1])  # no signer: the head (15) stays unsigned
        assert store.add_checkpoint(key) is not None
        assert store.add_checkpoint(key) is None
        report = verify(store, verifier_of(key))
        assert report.ok and report.checkpoints == 3 and report.unsigned == 0 and report.last_checkpoint == 15

    # -- checkpoints: append-only, timed, witnessed -------------------------------------------
    def test_the_tables_refuse_to_update_or_delete_checkpoints(self, make_store: MakeStore, query: Query) -> None:
        """Deleting or rewriting checkpoints fails like records do (append-only)."""
        store = make_store()
        store.append(life(), signer(), checkpoint_every=7)
        with pytest.raises(Exception, match="append-only"):
            query("DELETE FROM audit_checkpoints", ())
        with pytest.raises(Exception, match="append-only"):
            query("UPDATE audit_checkpoints SET hash = ?", ("0" * 64,))
        assert [c.seq for c in store.checkpoints()] == [7]

    def test_the_head_is_signed_again_once_the_interval_has_passed(self, make_store: MakeStore) -> None:
        """checkpoint_interval: the first append signs, the next within the interval does not, one after does."""
        import time

        log = AuditLog(make_store(), signer(), checkpoint_every=1000, checkpoint_interval=0.3)
        log.append(life(1))
        log.append(life(2))
        time.sleep(0.35)
        log.append(life(3))
        assert [c.seq for c in log.store.checkpoints()] == [7, 21]

    def test_every_checkpoint_is_also_written_to_the_witness(self, make_store: MakeStore, witness: Witness) -> None:
        key = signer()
        log = AuditLog(make_store(), key, checkpoint_every=5, witness=witness)
        log.append(life(1))
        log.append(life(2)[:2])
        log.checkpoint()
        assert [c.seq for c in witness.checkpoints()] == [c.seq for c in log.store.checkpoints()] == [7, 9]
        report = verify(log.store, verifier_of(key), witness=witness)
        assert report.ok and report.witnessed == 2 and report.unproven == []

    def test_a_truncation_with_its_checkpoints_deleted_is_caught_by_the_witness(
            self, make_store: MakeStore, tamper: Tamper, witness: Witness) -> None:
        """Records and checkpoints cut off the end and the head moved back: the store alone verifies,
        the witness does not agree."""
        key = signer()
        log = AuditLog(make_store(), key, checkpoint_every=7, witness=witness)
        for history in (1, 2, 3):
            log.append(life(history))
        tamper("DELETE FROM audit_checkpoints WHERE seq > ?", (7,))
        tamper("DELETE FROM audit_records WHERE seq > ?", (7,))
        tamper("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (7, log.store.checkpoints()[0].hash))
        assert verify(log.store, verifier_of(key)).ok  # without the witness, nothing shows
        report = verify(log.store, verifier_of(key), witness=witness)
        assert report.first is not None and report.first.seq == 8
        assert "rolled back" in report.first.what

    def test_checkpoints_deleted_in_the_middle_are_caught_by_the_witness(
            self, make_store: MakeStore, tamper: Tamper, witness: Witness) -> None:
        key = signer()
        log = AuditLog(make_store(), key, checkpoint_every=7, witness=witness)
        for history in (1, 2, 3):
            log.append(life(history))
        tamper("DELETE FROM audit_checkpoints WHERE seq = ?", (14,))
        report = verify(log.store, verifier_of(key), witness=witness)
        assert report.first is not None and report.first.seq == 14 and "lost its checkpoint" in report.first.what

    def test_records_left_unsigned_past_the_interval_are_named(self, make_store: MakeStore, tamper: Tamper) -> None:
        """With a 5 s interval, a record written a minute after the last checkpoint (checkpoints after it
        removed, or the record added without the key) is named."""
        key = signer()
        store = make_store()
        log = AuditLog(store, key, checkpoint_every=1000, checkpoint_interval=5)
        log.append(life(1))
        later = [replace(e, at="2999-01-01T00:00:00.000000+00:00") for e in life(2)]
        store.append(later)  # no signer: as someone without the key would add them
        report = verify(store, verifier_of(key), interval=5)
        assert report.first is not None and report.first.seq == 8 and "more than 5 s after" in report.first.what
        assert verify(store, verifier_of(key), interval=0).ok

    def test_verify_says_what_it_could_not_prove(self, make_store: MakeStore, tamper: Tamper) -> None:
        """Checkpoint hashes rewritten along with the chain: without a key it cannot tell, and says so."""
        store = make_store()
        store.append(life(), signer(), checkpoint_every=7)
        report = verify(store)
        assert report.ok
        assert any("no public key" in u for u in report.unproven)
        assert any("no witness" in u for u in report.unproven)

    # -- a municipality's export ------------------------------------------------------------
    def test_a_municipalitys_export_verifies_and_withholds_the_others(self, make_store: MakeStore) -> None:
        """bus.audit.export on this store: only the municipality's records, the others' as runs,
        every checkpoint; verify_export proves it with only the lines and the public key."""
        import io

        from bus.audit.export import export_municipality, verify_export

        store = make_store()
        key = signer()
        other = [replace(e, municipality="271004", subject="b" * 32) for e in life(2)]
        store.append(life(1) + other + life(3), key, checkpoint_every=5)
        out = io.StringIO()
        summary = export_municipality(store, MUNICIPALITY, out)
        assert (summary.records, summary.withheld) == (2 * len(life()), len(other))
        assert "b" * 32 not in out.getvalue()
        municipality, report = verify_export(out.getvalue().splitlines(), verifier_of(key))
        assert municipality == MUNICIPALITY and report.ok, report.problems[:3]
        assert report.checkpoints == len(store.checkpoints()) > 0 and report.head_seq == store.head().seq

    # -- personal data ---------------------------------------------------------------------
    def test_a_verification_from_a_good_checkpoint_on_reads_only_the_rest_and_finds_a_tamper(
            self, make_store: MakeStore, tamper: Tamper) -> None:
        """What /readyz does (bus.audit.watch): verify from the last good checkpoint; the records
        after it, and the checkpoint's own record, are read again and checked."""
        store = make_store()
        key = signer()
        store.append(life(1), key, checkpoint_every=7)
        first = verify(store, verifier_of(key))
        assert first.ok and first.anchor is not None and first.anchor.seq == 7
        store.append(life(2), key, checkpoint_every=7)
        later = verify(store, verifier_of(key), since=first.anchor)
        assert later.ok and later.records == store.head().seq - 6 and later.anchor is not None
        tamper("UPDATE audit_records SET destination = ? WHERE seq = ?", ("nenkin", 7))
        broken = verify(store, verifier_of(key), since=first.anchor)
        assert [p.seq for p in broken.problems] == [7] and "was altered" in broken.problems[0].what

    def test_a_format_1_trail_migrates_into_this_store_and_verifies(self, make_store: MakeStore,
                                                                   tmp_path: Path) -> None:
        """renkei audit migrate --to 2 into this backend: the same contents, signed, whole."""
        from bus.audit.migrate import migrate_trail
        from bus.audit.signing import generate_key_file

        generate_key_file(tmp_path / "k.pem")
        write_format_1(tmp_path / "old.sqlite", [life(1), life(2)], tmp_path / "k.pem", 4)
        key = CheckpointSigner.from_pem((tmp_path / "k.pem").read_bytes())
        new = make_store()
        with open_store(tmp_path / "old.sqlite") as old:
            done = migrate_trail(old, new, key, verifier=verifier_of(key), checkpoint_every=4)
            assert [r.digest for r in new.records()][:-1] == [r.digest for r in old.records()]
        assert done.format_1 == done.records == len(life(1)) + len(life(2))
        report = verify(new, verifier_of(key))
        assert report.ok and report.last_checkpoint == done.anchor_seq == done.records + 1

    def test_stored_rows_hold_no_plaintext_personal_value(self, make_store: MakeStore, query: Query) -> None:
        """Every stored column of every row, read raw, holds neither the 宛名番号 nor the 個人番号."""
        store = make_store()
        log = AuditLog(store)
        for history in (1, 2):
            log.append(life(history))
        log.append([AuditEvent.of(EventType.DEAD_LETTERED, envelope(3), reason=f"rejected {PERSONAL_NUMBER}")])
        dump = repr(query(f"SELECT {', '.join(COLUMNS)} FROM audit_records", ()))
        assert ADDRESS_NUMBER not in dump and PERSONAL_NUMBER not in dump
        assert subject() in dump

    # -- concurrency -----------------------------------------------------------------------
    def test_processes_appending_at_once_keep_one_chain(self, make_store: MakeStore,
                                                        store_location: tuple[str, dict[str, Any]]) -> None:
        """Four processes append small batches at the same time: the chain verifies and none is lost."""
        store = make_store()
        pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption())
        key = CheckpointSigner.from_pem(pem)
        location, options = store_location
        ctx = multiprocessing.get_context("spawn")
        start = ctx.Event()
        workers, rounds = 4, 40
        processes = [ctx.Process(target=append_worker, args=(location, options, w, rounds, pem, start))
                     for w in range(workers)]
        for p in processes:
            p.start()
        start.set()
        for p in processes:
            p.join(120)
        assert [p.exitcode for p in processes] == [0] * workers
        seqs = [r.seq for r in store.records()]
        assert seqs == list(range(1, len(seqs) + 1))
        expected = workers * sum(1 + i % 3 for i in range(rounds))
        report = verify(store, verifier_of(key))
        assert report.ok, report.problems[:3]
        assert report.records == expected == store.head().seq
        assert report.checkpoints == expected // 25


def _head_before(record: Any) -> Any:
    from bus.audit.chain import Head

    return Head(record.seq - 1, record.prev_hash)
