"""The witness: every signed checkpoint, also kept outside the audit store.

A signed checkpoint proves the chain up to it; it cannot prove that the store still holds
the checkpoints and records after it. Someone who can write the store can cut its end off
(records, checkpoints and head together) or copy back last week's file, and what remains
verifies. So every checkpoint the bus signs is also written to a witness that the store's
writer cannot rewrite along with it — a file on another volume (or a host mount), or a
table in PostgreSQL — and `renkei audit verify` compares: a checkpoint the witness holds
must be in the store, at its seq, with its hash.

    witness = open_witness("/mnt/audit-witness/renkei.jsonl")      # or postgresql://…?schema=…
    witness.record(checkpoint)      # after the store committed it
    witness.checkpoints()           # what verify compares against

`FileWitness` appends one JSON line per checkpoint (O_APPEND, fsync), so a crash leaves at
most a partial last line, which reading skips. `PostgresWitness` keeps them in its own
table, append-only by trigger. A witness write that fails is logged and the bus goes on (the
checkpoint is in the store; verify then notes that the witness is behind).
"""

from __future__ import annotations

import abc
import json
import os
from dataclasses import asdict
from pathlib import Path

from bus.audit.signing import Checkpoint
from bus.errors import AuditStoreError

__all__ = ["FileWitness", "PostgresWitness", "Witness", "open_witness"]


class Witness(abc.ABC):
    """Signed checkpoints, kept where the audit store's writer cannot rewrite them."""

    location: str = ""

    @abc.abstractmethod
    def record(self, checkpoint: Checkpoint) -> None:
        """Keep `checkpoint` (durably, before returning)."""

    @abc.abstractmethod
    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint kept, in seq order."""

    def close(self) -> None:  # noqa: B027 - a hook: most witnesses hold nothing open
        """Release what the witness holds open."""


class FileWitness(Witness):
    """One JSON line per checkpoint, appended and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)

    def record(self, checkpoint: Checkpoint) -> None:
        line = (json.dumps(asdict(checkpoint), sort_keys=True) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise AuditStoreError(f"cannot write the audit witness {self.path}: {exc.strerror}") from None

    def checkpoints(self) -> list[Checkpoint]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise AuditStoreError(f"cannot read the audit witness {self.path}: {exc.strerror}") from None
        found: dict[int, Checkpoint] = {}
        lines = text.split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                checkpoint = Checkpoint(**json.loads(line))
            except (ValueError, TypeError):
                if number == len(lines):  # a partial last line: a crash while appending
                    continue
                raise AuditStoreError(f"{self.path}:{number}: not a witnessed checkpoint") from None
            found.setdefault(checkpoint.seq, checkpoint)
        return [found[seq] for seq in sorted(found)]


class PostgresWitness(Witness):
    """A table `audit_witness` in its own schema (default `renkei_audit_witness`), append-only
    by trigger. Use a server, or at least a role, other than the audit store's."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        import psycopg

        from bus.pg import check_schema_name, split_schema

        self._url, url_schema = split_schema(url)
        self.schema = check_schema_name(schema or url_schema or "renkei_audit_witness", "witness", AuditStoreError)
        self.location = f"{self._url.split('@')[-1]} (schema {self.schema})"
        try:
            with psycopg.connect(self._url, autocommit=True, connect_timeout=10) as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('renkei.audit.witness'))")
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                for statement in _WITNESS_DDL:
                    conn.execute(statement.replace("@S@", self.schema).encode())
        except psycopg.Error as exc:
            raise AuditStoreError(f"cannot create the audit witness in {self.location}: {exc}") from None

    def _run(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        import psycopg

        try:
            with psycopg.connect(self._url, autocommit=True, connect_timeout=10) as conn:
                cur = conn.execute(sql.replace("@S@", self.schema).encode(), params)
                return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise AuditStoreError(f"audit witness {self.location}: {exc}") from None

    def record(self, checkpoint: Checkpoint) -> None:
        self._run("INSERT INTO @S@.audit_witness (seq, hash, signed_at, key_id, signature) "
                  "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (seq) DO NOTHING",
                  (checkpoint.seq, checkpoint.hash, checkpoint.signed_at, checkpoint.key_id, checkpoint.signature))

    def checkpoints(self) -> list[Checkpoint]:
        rows = self._run("SELECT seq, hash, signed_at, key_id, signature FROM @S@.audit_witness ORDER BY seq")
        return [Checkpoint(int(str(r[0])), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    def close(self) -> None:
        """Nothing held open: each call connects (checkpoints come every few seconds at most)."""


_WITNESS_DDL = (
    "CREATE TABLE IF NOT EXISTS @S@.audit_witness (seq BIGINT PRIMARY KEY, hash TEXT NOT NULL, "
    "signed_at TEXT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL)",
    "CREATE OR REPLACE FUNCTION @S@.audit_witness_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'the audit witness is append-only'; END $$",
    "DROP TRIGGER IF EXISTS audit_witness_append_only ON @S@.audit_witness",
    "CREATE TRIGGER audit_witness_append_only BEFORE UPDATE OR DELETE ON @S@.audit_witness "
    "FOR EACH ROW EXECUTE FUNCTION @S@.audit_witness_append_only()",
)


def open_witness(location: str | Path) -> Witness:
    """The witness at `location`: a file path, or a postgresql:// URL (`?schema=` chooses the schema)."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresWitness(text)
    if "://" in text:
        raise AuditStoreError(f"unknown audit witness {text.split('://', 1)[0]}://: use a file path or "
                              "postgresql://…")
    return FileWitness(Path(text))
