"""`renkei audit migrate --to 2`: re-chain a trail (records of format 1 among them) in format 2
into a new store (bus.audit.migrate), so that `renkei audit export` can withhold other
municipalities' records provably. A subcommand of `renkei audit` (bus.cli.audit)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["migrate_command"]


@click.command("migrate")
@click.option("--to", "to_format", type=click.IntRange(2, 2), required=True, help="The record format to move to: 2.")
@click.option("--out", "out_store", required=True, metavar="PATH|URL",
              help="The new, empty store the trail is re-chained into (a file path or postgresql:// URL).")
@click.option("--witness", "new_witness", default=None, metavar="PATH|URL",
              help="A new witness for the new trail's checkpoints (the old witness keeps the old chain's).")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="renkei.toml of the bus (default: RENKEI_* environment and defaults).")
@click.option("--store", default=None, metavar="PATH|URL", help="The audit store (overrides [audit] store).")
def migrate_command(to_format: int, out_store: str, new_witness: str | None, config: Path | None,
                    store: str | None) -> None:
    """Re-chain the trail (records of format 1 among them) in format 2 into a new store, signed,
    so that `renkei audit export` can withhold other municipalities' records provably. The old
    trail is verified first and kept unchanged; stop the bus meanwhile. Then point [audit] store
    (and witness) at the new ones.

    Exit status: 0 migrated, 1 the old trail is broken or grew meanwhile, 2 a usage or
    configuration error (no signing key, the new store not empty)."""
    from bus.audit import AuditLog, open_store
    from bus.audit.migrate import migrate_trail
    from bus.audit.witness import open_witness
    from bus.cli.config import fail, load_settings
    from bus.cli.progress import progress
    from bus.errors import AuditStoreError, ConfigError

    settings = load_settings("audit migrate", config)
    if settings.audit.signing_key is None:
        fail("audit migrate", "no signing key: the migrated chain must be signed (set [audit] signing_key_file or "
                              "RENKEI_AUDIT_SIGNING_KEY)")
    if new_witness is not None and new_witness == settings.audit.witness:
        fail("audit migrate", "--witness is the configured witness, which holds the old chain's checkpoints: give a "
                              "new one")
    location = store or settings.audit_store
    if "://" not in location and not Path(location).is_file():
        fail("audit migrate", f"no audit trail at {location} (see [audit] store, or give --store)")
    try:
        log = AuditLog.open(settings, location)
    except (ConfigError, AuditStoreError) as exc:
        fail("audit migrate", str(exc))
    new = None
    try:
        new = open_store(out_store)
        if new.head().seq:
            fail("audit migrate", f"{new.location} is not empty: migrate into a new store")
        witness = open_witness(new_witness) if new_witness else None
        assert log.signer is not None
        with progress("migrating records", log.store.head().seq) as advance:
            done = migrate_trail(log.store, new, log.signer, verifier=log.verifier(), old_witness=log.witness,
                                 witness=witness, checkpoint_every=log.checkpoint_every, progress=advance)
    except (ConfigError, AuditStoreError) as exc:
        fail("audit migrate", str(exc), code=1)
    finally:
        log.close()
        if new is not None:
            new.close()
    click.echo(f"migrated {done.records} records ({done.format_1} of format 1) from {log.store.location} to "
               f"{new.location} in format {to_format}; record {done.anchor_seq} names the old head, signed with key "
               f"{done.checkpoint.key_id}")
    witnessed = f" and [audit] witness at {new_witness}" if new_witness else " (and [audit] witness at a new one)"
    click.echo(f"next: point [audit] store at {out_store}{witnessed}; keep {log.store.location} as the old trail's "
               "archive")
    for what in done.unproven:
        click.echo(f"note: the old trail's verification could not prove {what}", err=True)
