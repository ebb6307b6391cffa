"""One municipality's part of the trail, in a file its auditor can verify without the store.

In a shared data centre (自治体クラウド) the trail is one chain for every municipality, but an
auditor of 千代田区 may see only 千代田区's records. `export_municipality` writes JSON Lines:

    {"schema": "renkei.audit-export/1", "municipality": "131016", "exported_at": …,
     "head": {"seq": 9120, "hash": "…"}}
    {"record": {…every field, seq, prev_hash, hash…}}          a record naming the municipality
    {"withheld": {"from": 3, "to": 17, "prev_hash": "…", "hash": "…", "digests": ["…", …]}}
                                         records 3–17 are others': only the chain's hash before
                                         them (prev_hash), each one's content digest, and the
                                         hash after them (of record 17)
    {"checkpoint": {"seq": …, "hash": …, "signed_at": …, "key_id": …, "signature": …}}
    {"end": {"records": 2210, "withheld": 6910, "checkpoints": 9}}   what the file holds

The file is written as the trail is read (memory stays flat for any size of trail), from the
head as it was when the export began.

A withheld run ends at every checkpoint, so each checkpoint's hash appears in the file.
`verify_export` checks, with nothing but the file and the signing keys' public halves:
every exported record's content gives its hash, every withheld run's digests, chained from
its prev_hash, give its hash (bus.audit.chain: hash = H(prev_hash, digest)), every entry
follows the one before it (seq and prev_hash), the last one is the head, every checkpoint's
signature verifies and its hash is the chain's hash at its seq, and (with keys) the head is
signed — `renkei audit export` signs it before it writes. So the file's chain is recomputed
from genesis to a signed head: a record altered, with every hash after it recomputed, no
longer reaches the signed hash. Each exported record is proven to be in the signed chain,
unaltered and in its place.

What it cannot prove: that a withheld run holds no record of the municipality; which records
are exported is the exporter's choice (`municipality` of the event). The runs tell how many
records the other municipalities have, nothing else of them. An exported record is as the
trail holds it: pseudonyms, never personal data (bus.audit.guard).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from bus.audit.chain import GENESIS, AuditRecord, chain_hash, legacy_hash
from bus.audit.events import utc_now
from bus.audit.signing import Checkpoint, CheckpointVerifier
from bus.audit.store import AuditStore
from bus.audit.verify import Problem, Report, check_checkpoints
from bus.errors import AuditStoreError, ExportUnreadable

__all__ = ["EXPORT_SCHEMA", "ExportSummary", "ExportUnreadable", "export_municipality", "verify_export"]

EXPORT_SCHEMA = "renkei.audit-export/2"


@dataclass(frozen=True, slots=True)
class ExportSummary:
    municipality: str
    head_seq: int
    records: int
    withheld: int
    checkpoints: int


@dataclass(slots=True)
class _Run:
    start: int
    prev_hash: str
    end: int = 0
    hash: str = GENESIS
    digests: list[str] = field(default_factory=list)

    def entry(self) -> dict[str, Any]:
        return {"withheld": {"from": self.start, "to": self.end, "prev_hash": self.prev_hash, "hash": self.hash,
                             "digests": self.digests}}


def export_municipality(store: AuditStore, municipality: str, out: IO[str]) -> ExportSummary:
    """Write `municipality`'s records (and the chain around them) to `out`, streaming: the
    trail as it was when the export began (records appended meanwhile are left for the next)."""
    head = store.head()
    checkpoints = [c for c in store.checkpoints() if c.seq <= head.seq]
    signed = {c.seq for c in checkpoints}
    out.write(_line({"schema": EXPORT_SCHEMA, "municipality": municipality, "exported_at": utc_now(),
                     "head": {"seq": head.seq, "hash": head.hash}}))
    records = withheld = 0
    run: _Run | None = None
    prev = GENESIS
    for record in store.records():
        if record.seq > head.seq:
            break
        if record.event.municipality == municipality:
            if run is not None:
                out.write(_line(run.entry()))
                run = None
            out.write(_line({"record": record.to_dict()}))
            records += 1
        else:
            if run is None:
                run = _Run(record.seq, prev)
            if legacy_hash(record.seq, record.prev_hash, record.event) == record.hash:
                raise AuditStoreError(f"record {record.seq} was written in audit format 1, whose records cannot be "
                                      "withheld provably: re-chain the trail first (`renkei audit migrate --to 2`)")
            run.end, run.hash = record.seq, record.hash
            run.digests.append(record.digest)
            withheld += 1
            if record.seq in signed:  # a checkpoint's hash must be in the file
                out.write(_line(run.entry()))
                run = None
        prev = record.hash
    if run is not None:
        out.write(_line(run.entry()))
    for checkpoint in checkpoints:
        out.write(_line({"checkpoint": asdict(checkpoint)}))
    out.write(_line({"end": {"records": records, "withheld": withheld, "checkpoints": len(checkpoints)}}))
    return ExportSummary(municipality, head.seq, records, withheld, len(checkpoints))


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n"


def verify_export(lines: Iterable[str], verifier: CheckpointVerifier | None = None) -> tuple[str, Report]:
    """The export's municipality, and what is wrong with the export (Report.ok when nothing).
    Raises ExportUnreadable when the file is not an export at all (saying which line)."""
    entries = _entries(lines)
    first = next(entries, None)
    if first is None or first[1].get("schema") != EXPORT_SCHEMA:
        older = first is not None and first[1].get("schema") == "renkei.audit-export/1"
        raise ExportUnreadable(f"line 1: not a renkei audit export (schema {EXPORT_SCHEMA} expected)"
                               + ("; format 1 cannot prove the chain through withheld runs: export again" if older
                                  else ""))
    header = first[1]
    walk = _Walk(str(header.get("municipality")))
    for number, entry in entries:
        try:
            walk.take(entry)
        except ExportUnreadable as exc:
            raise ExportUnreadable(f"line {number}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportUnreadable(f"line {number}: malformed entry ({type(exc).__name__}: {exc})") from None
    head = header.get("head") or {}
    walk.end(int(head.get("seq", 0)), str(head.get("hash", GENESIS)))
    check_checkpoints(walk.report, walk.checkpoints, walk.hashes, verifier)
    if verifier is not None and walk.report.unsigned:
        last = walk.report.last_checkpoint
        walk.report.problems.append(Problem(last + 1, f"is not covered by a signed checkpoint: records {last + 1}–"
                                                      f"{walk.report.head_seq} are not proven (the export's head "
                                                      "must be signed; `renkei audit export` signs it)"))
    return walk.municipality, walk.report


class _Walk:
    """The chain, entry by entry, as verify() walks a store."""

    def __init__(self, municipality: str) -> None:
        self.municipality = municipality
        self.report = Report()
        self.hashes: dict[int, str] = {}  # at every exported record and every run's end
        self.checkpoints: list[Checkpoint] = []
        self._expected, self._prev = 1, GENESIS
        self._withheld_count = 0
        self.counts: dict[str, int] | None = None  # the end line's
        self._appended = False

    def take(self, entry: dict[str, Any]) -> None:
        if self.counts is not None:
            if not self._appended:
                self.report.problems.append(Problem(self._expected, "is an entry after the end line "
                                                                    "(entries appended to the export)"))
            self._appended = True
            return
        if "end" in entry:
            self.counts = {k: int(v) for k, v in entry["end"].items()}
        elif "checkpoint" in entry:
            self.checkpoints.append(Checkpoint(**entry["checkpoint"]))
        elif "record" in entry:
            self._record(AuditRecord.from_row(entry["record"]))
        elif "withheld" in entry:
            run = entry["withheld"]
            self._withheld(int(run["from"]), int(run["to"]), str(run["prev_hash"]), str(run["hash"]),
                           [str(d) for d in run["digests"]])
        else:
            raise ExportUnreadable("neither a record, a withheld run nor a checkpoint")

    def _record(self, record: AuditRecord) -> None:
        self.report.records += 1
        problem = self._follows(record.seq, record.prev_hash)
        if problem is None and record.computed_hash != record.hash:
            problem = "was altered: its content no longer matches its hash"
        if problem is None and record.event.municipality != self.municipality:
            problem = f"is of municipality {record.event.municipality}, not {self.municipality}"
        self._step(record.seq, record.seq, record.hash, problem)

    def _withheld(self, start: int, end: int, prev_hash: str, digest: str, digests: list[str]) -> None:
        self._withheld_count += max(0, end - start + 1)
        problem = self._follows(start, prev_hash)
        if problem is None and end < start:
            problem = f"is a withheld run that ends ({end}) before it starts"
        if problem is None and len(digests) != end - start + 1:
            problem = f"is a withheld run of {end - start + 1} records with {len(digests)} digests"
        if problem is None:
            computed = prev_hash
            for content in digests:
                computed = chain_hash(computed, content)
            if computed != digest:
                problem = (f"is a withheld run ({start}–{end}) whose records do not chain to the hash it states: "
                           "a record before it, or one of its digests, was altered")
        self._step(start, end, digest, problem)

    def _follows(self, seq: int, prev_hash: str) -> str | None:
        if seq != self._expected:
            return f"is out of place: record {self._expected} was expected here (entries removed or reordered)"
        if prev_hash != self._prev:
            return f"does not follow record {seq - 1}: its prev_hash is not that record's hash"
        return None

    def _step(self, start: int, end: int, digest: str, problem: str | None) -> None:
        if problem:
            self.report.problems.append(Problem(start, problem))
        self._expected, self._prev = end + 1, digest
        self.hashes[end] = digest

    def end(self, head_seq: int, head_hash: str) -> None:
        self.report.head_seq = head_seq
        last = self._expected - 1
        if last < head_seq:
            self.report.problems.append(Problem(last + 1, f"is missing: the export ends at record {last}, its "
                                                          f"head is record {head_seq} (entries removed from the end)"))
        elif last != head_seq or (last and self._prev != head_hash):
            self.report.problems.append(Problem(last, f"does not match the export's head (record {head_seq}): "
                                                      "the head or the last entries were altered"))
        seen = {"records": self.report.records, "withheld": self._withheld_count,
                "checkpoints": len(self.checkpoints)}
        if self.counts is None:
            self.report.problems.append(Problem(last + 1, "is missing: the export has no end line (it was cut off)"))
        elif self.counts != seen:
            self.report.problems.append(Problem(last, f"the end line counts {self.counts}, the export holds {seen} "
                                                      "(entries or checkpoints removed or added)"))


def _entries(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            raise ExportUnreadable(f"line {number}: not JSON") from None
        if not isinstance(data, dict):
            raise ExportUnreadable(f"line {number}: not a JSON object")
        yield number, data
