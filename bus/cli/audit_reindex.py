"""`renkei audit reindex`: a SQLite trail written before December 2026 (two indexes of message ids
and subjects, written at every append) converted to the sorted runs of a new trail
(bus.audit.lookup): every complete run built, then both indexes dropped. The records are not
touched: the chain and its checkpoints stay as they are. A subcommand of `renkei audit`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import click

__all__ = ["reindex_command"]


@click.command("reindex")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="renkei.toml of the bus (default: RENKEI_* environment and defaults).")
@click.option("--store", default=None, metavar="PATH", help="The audit store (overrides [audit] store).")
def reindex_command(config: Path | None, store: str | None) -> None:
    """Convert a SQLite trail of the format before December 2026 to sorted runs, so that an append
    no longer writes two index entries at random places (docs/audit.md, "Finding a message's
    records"). Stop the bus meanwhile. A trail already converted is left as it is.

    Exit status: 0 converted (or nothing to do), 1 the trail could not be written, 2 a usage or
    configuration error (no such file, a PostgreSQL store: its indexes stay)."""
    from bus.audit import lookup
    from bus.cli.config import fail, load_settings
    from bus.cli.progress import progress
    from bus.sqlite import enable_wal

    settings = load_settings("audit reindex", config)
    location = store or settings.audit_store
    if "://" in location and not location.startswith("sqlite://"):
        fail("audit reindex", "only a SQLite trail has sorted runs: a PostgreSQL trail keeps its indexes")
    path = Path(location.removeprefix("sqlite://"))
    if not path.is_file():
        fail("audit reindex", f"no audit trail at {path} (see [audit] store, or give --store)")
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            enable_wal(db)
            if not lookup.legacy(db):
                click.echo(f"{path}: already in sorted runs; nothing to do")
                return
            db.executescript(f"BEGIN IMMEDIATE; {lookup.SCHEMA} COMMIT;")
            head = int(db.execute("SELECT seq FROM audit_head WHERE id = 1").fetchone()[0])
            with progress("indexing records", head) as advance:
                runs = lookup.convert(db, on_run=advance)
        finally:
            db.close()
    except sqlite3.Error as exc:
        fail("audit reindex", f"cannot convert {path}: {type(exc).__name__}: {exc}", code=1)
    click.echo(f"{path}: {runs} runs of {lookup.RUN} records built, the two indexes dropped; the "
               f"{head - runs * lookup.RUN} records after the last run are found by a scan until the next run")
