"""`renkei audit`: verify the trail, show a message's life, answer who received a resident's data.

    renkei audit verify [--public-key FILE] [--witness PATH|URL] [--strict] [--json]
                                                   OK: N records, M checkpoints … | BROKEN at record S: …
                                                   and what it could not prove (no key, no witness)
    renkei audit show MESSAGE_ID [--json]          every event of one message, in order
    renkei audit trail --resident 宛名番号 [--municipality M] [--since T] [--csv]
                                                   who received this person's data, when, under
                                                   which route and legal basis
    renkei audit export --municipality M [--out F] one municipality's records, the chain around
                                                   them withheld, for its auditor (JSON Lines)
    renkei audit verify-export F [--public-key K]  check an export with only the file and keys
    renkei audit migrate --to 2 --out NEW [--witness W]   re-chain a trail of format 1 in format 2,
                                                   into a new store, so it exports with withholding
    renkei audit checkpoint                        sign the chain head now
    renkei audit keygen FILE                       a new Ed25519 signing key (FILE, FILE.pub)

Settings come from --config (renkei.toml) and RENKEI_* variables; --store overrides
`[audit] store`. Exit status: 0 OK; 1 the chain is
broken, or nothing was found (show, trail); 2 usage or configuration error; 3 (with
--strict) OK as far as it goes, but something could not be proven (no key, no witness). Output names a
person only by pseudonym: the 宛名番号 given to `trail` is never printed.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from bus.audit import AuditLog
    from bus.settings import Settings

__all__ = ["audit"]


def _settings(command: str, config: Path | None) -> Settings:
    from bus.cli.config import load_settings

    return load_settings(f"audit {command}", config)


def _open(command: str, settings: Settings, store: str | None) -> AuditLog:
    from bus.audit import AuditLog
    from bus.cli.config import fail
    from bus.errors import AuditStoreError, ConfigError

    location = store or settings.audit_store
    if "://" not in location and not Path(location).is_file():
        fail(f"audit {command}", f"no audit trail at {location} (see [audit] store, or give --store)")
    try:
        return AuditLog.open(settings, location)
    except (ConfigError, AuditStoreError) as exc:
        fail(f"audit {command}", str(exc))


_config = click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                       help="renkei.toml of the bus (default: RENKEI_* environment and defaults).")
_store = click.option("--store", default=None, metavar="PATH|URL",
                      help="The audit store (overrides [audit] store).")


@click.group("audit")
def audit() -> None:
    """The audit trail: verify it, show a message's life, a resident's trail."""


@audit.command("verify")
@_config
@_store
@click.option("--public-key", "public_keys", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also trust this Ed25519 public key (PEM; repeatable), e.g. an auditor's copy.")
@click.option("--witness", default=None, metavar="PATH|URL",
              help="Compare with this witness of signed checkpoints (overrides [audit] witness).")
@click.option("--strict", is_flag=True, help="Exit 3 when something could not be proven (no key, no witness).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document (ok, records, checkpoints, first problem, unproven).")
def verify_command(config: Path | None, store: str | None, public_keys: tuple[Path, ...], witness: str | None,
                   strict: bool, as_json: bool) -> None:
    """Check every record's hash and link, every checkpoint's signature and the witness; name the
    first break, and say what could not be proven.

    Exit status: 0 the chain is whole, 1 it is broken (the first break named), 2 a usage or
    configuration error, 3 with --strict: something could not be proven."""
    from bus.audit import AuditStoreError
    from bus.audit.witness import open_witness
    from bus.cli.config import fail
    from bus.errors import ConfigError

    log = _open("verify", _settings("verify", config), store)
    try:
        report = log.verify([p.read_bytes() for p in public_keys], open_witness(witness) if witness else None)
    except (ConfigError, AuditStoreError) as exc:
        fail("audit verify", str(exc))
    finally:
        log.close()
    where = log.store.location
    if as_json:
        first = report.first
        click.echo(json.dumps({
            "store": where, "ok": first is None, "records": report.records, "checkpoints": report.checkpoints,
            "last_checkpoint": report.last_checkpoint or None, "witnessed": report.witnessed,
            "first_problem": None if first is None else {"seq": first.seq, "what": first.what},
            "problems": len(report.problems), "unproven": list(report.unproven), "notes": list(report.notes),
        }, ensure_ascii=False, indent=2))
        if first is not None:
            raise SystemExit(1)
        if strict and report.unproven:
            raise SystemExit(3)
        return
    if report.first is not None:
        more = len(report.problems) - 1
        click.echo(f"{where}: BROKEN at record {report.first.seq}: {report.first.what}"
                   + (f" (+{more} more problem{'s' if more > 1 else ''})" if more else ""))
        raise SystemExit(1)
    signed = f", last checkpoint at record {report.last_checkpoint}" if report.checkpoints else ""
    witnessed = f", {report.witnessed} witnessed" if report.witnessed else ""
    proven = "" if not report.unproven else " (not everything proven, see below)"
    click.echo(f"{where}: OK: {report.records} records, {report.checkpoints} checkpoints{signed}{witnessed}{proven}")
    _say_unproven(report.unproven, report.notes, strict)


def _say_unproven(unproven: list[str], notes: list[str], strict: bool) -> None:
    for what in unproven:
        click.echo(f"not proven: {what}", err=True)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if strict and unproven:
        raise SystemExit(3)


def _record_line(data: dict[str, Any]) -> str:
    parts = [f"{data['seq']:>8}", data["at"], f"{data['event']:<13}"]
    for name in ("destination", "route", "projection", "legal_basis", "receipt", "attempt", "actor", "reason",
                 "source", "kind"):
        if data.get(name) not in (None, "") and not (name == "kind" and data[name] == data.get("projection")):
            parts.append(f"{name}={data[name]}")
    if data.get("codes"):
        parts.append("codes=" + ",".join(data["codes"]))
    return "  ".join(parts)


@audit.command("show")
@click.argument("message_id")
@_config
@_store
@click.option("--json", "as_json", is_flag=True, help="Print the records as one JSON document.")
def show(message_id: str, config: Path | None, store: str | None, as_json: bool) -> None:
    """Show the whole life of MESSAGE_ID: every event, in order.

    Exit status: 0 found, 1 no record of this message, 2 a usage or configuration error."""
    log = _open("show", _settings("show", config), store)
    try:
        records = log.life(message_id)
    finally:
        log.close()
    if not records:
        click.echo(f"no audit records for message {message_id} in {log.store.location}", err=True)
        raise SystemExit(1)
    rows = [r.to_dict() for r in records]
    if as_json:
        click.echo(json.dumps({"message_id": message_id, "records": rows}, ensure_ascii=False, indent=2))
        return
    first = records[0].event
    click.echo(f"message {message_id}  municipality {first.municipality or '-'}  subject {first.subject or '-'}"
               f"  sequence {first.sequence if first.sequence is not None else '-'}")
    for row in rows:
        click.echo(_record_line(row))


def _since(value: str | None) -> str | None:
    """ISO date or date-time; without an offset it is local time. Returned as the trail's UTC text."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected an ISO date or date-time, e.g. 2026-04-01 or 2026-04-01T09:00+09:00",
                                 param_hint="--since") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@audit.command("trail")
@click.option("--resident", required=True, metavar="宛名番号",
              help="The resident's 宛名番号 (pseudonymised here, never stored or printed).")
@click.option("--municipality", default=None, metavar="CODE",
              help="Only this municipality (default: those in [bus] municipalities, else all in the trail).")
@click.option("--since", default=None, metavar="ISO", help="Only deliveries at or after this date/time.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (UTF-8, header row) instead of a table.")
@_config
@_store
def trail(resident: str, municipality: str | None, since: str | None, as_csv: bool, config: Path | None,
          store: str | None) -> None:
    """Who received this resident's data, when, under which route and legal basis.

    Exit status: 0 found, 1 no delivery of this resident's data, 2 a usage or configuration error."""
    from bus.audit import resident_trail, write_csv

    if not (resident.isascii() and resident.isdigit() and 1 <= len(resident) <= 15):
        raise click.BadParameter("must be a 宛名番号 of 1 to 15 digits", param_hint="--resident")
    if municipality is not None and not (municipality.isascii() and municipality.isdigit() and len(municipality) == 6):
        raise click.BadParameter("must be a 6-digit 地方公共団体コード", param_hint="--municipality")
    settings = _settings("trail", config)
    log = _open("trail", settings, store)
    keys = [settings.bus.pseudonym_key, *settings.audit.previous_pseudonym_keys]
    asked = [municipality] if municipality else list(settings.bus.municipalities)
    try:
        entries = resident_trail(log.store, resident, keys=keys, municipalities=asked, since=_since(since))
    finally:
        log.close()
    if as_csv:
        write_csv(entries, sys.stdout)
    elif entries:
        from bus.cli.tables import columns  # widths from the entries (a long route name), 漢字 as two columns

        rows: list[list[object]] = [[e.at, e.municipality, e.destination, e.kind, e.route, e.legal_basis or None]
                                    for e in entries]
        for line in columns(["at", "municipality", "destination", "kind", "route", "legal basis"], rows, text=6):
            click.echo(line)
        click.echo(f"{len(entries)} deliveries; subject {entries[0].subject}")
    if not entries:
        click.echo("no deliveries of this resident's data are recorded", err=True)
        raise SystemExit(1)


@audit.command("export")
@click.option("--municipality", required=True, metavar="CODE", help="The 地方公共団体コード whose records to export.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the export here (default: standard output).")
@_config
@_store
def export_command(municipality: str, out_path: Path | None, config: Path | None, store: str | None) -> None:
    """One municipality's records, with the chain around them, for its auditor (JSON Lines).

    Exit status: 0 written, 2 a usage or configuration error."""
    from bus.audit.export import export_municipality
    from bus.cli.config import fail
    from bus.cli.progress import counting_lines, progress
    from bus.errors import AuditStoreError

    if not (municipality.isascii() and municipality.isdigit() and len(municipality) == 6):
        raise click.BadParameter("must be a 6-digit 地方公共団体コード", param_hint="--municipality")
    log = _open("export", _settings("export", config), store)
    try:
        log.checkpoint()  # the export's head is signed, so every record in it is bound to a signature
        if out_path is None:
            summary = export_municipality(log.store, municipality, sys.stdout)
        else:
            tmp = out_path.with_name(out_path.name + ".part")
            with tmp.open("w", encoding="utf-8") as out, progress("exporting lines") as advance:
                summary = export_municipality(log.store, municipality, counting_lines(out, advance))
            tmp.replace(out_path)
    except AuditStoreError as exc:
        fail("audit export", str(exc), code=1)
    finally:
        log.close()
    click.echo(f"exported {summary.records} records of municipality {municipality} "
               f"({summary.withheld} of others withheld, {summary.checkpoints} checkpoints, head {summary.head_seq})"
               + (f" to {out_path}" if out_path else "") + "; check it with `renkei audit verify-export`", err=True)


@audit.command("verify-export")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--public-key", "public_keys", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A public key the checkpoints may be signed with (PEM; repeatable).")
@click.option("--strict", is_flag=True, help="Exit 3 when the signatures could not be checked (no --public-key).")
def verify_export_command(path: Path, public_keys: tuple[Path, ...], strict: bool) -> None:
    """Check an export with nothing but the file and the public keys: every record's hash, the
    chain through the withheld runs, the head and every checkpoint's signature.

    Exit status: 0 the export is whole, 1 it is broken or unreadable, 2 a usage error, 3 with
    --strict: the signatures could not be checked (no --public-key).
    """
    from bus.audit import CheckpointVerifier
    from bus.audit.export import verify_export
    from bus.cli.config import fail
    from bus.errors import ConfigError, ExportUnreadable

    try:
        verifier = CheckpointVerifier.from_pems([p.read_bytes() for p in public_keys], where="--public-key") \
            if public_keys else None
        with path.open(encoding="utf-8") as lines:
            municipality, report = verify_export(lines, verifier)
    except (ConfigError, UnicodeDecodeError) as exc:
        fail("audit verify-export", str(exc))
    except ExportUnreadable as exc:
        fail("audit verify-export", f"{path}: {exc}", code=1)  # not a good export: as broken as a bad hash
    if report.first is not None:
        more = len(report.problems) - 1
        click.echo(f"{path}: BROKEN at record {report.first.seq}: {report.first.what}"
                   + (f" (+{more} more problem{'s' if more > 1 else ''})" if more else ""))
        raise SystemExit(1)
    click.echo(f"{path}: OK: {report.records} records of municipality {municipality}, chain to record "
               f"{report.head_seq}, {report.checkpoints} checkpoints"
               + (" (signatures checked)" if verifier else ""))
    if verifier is None:
        _say_unproven(["that the records are the ones the bus signed: no --public-key, so the checkpoints' "
                       "signatures were not checked and a rewritten chain cannot be told from a good one"], [],
                      strict)


@audit.command("checkpoint")
@_config
@_store
def checkpoint(config: Path | None, store: str | None) -> None:
    """Sign the chain head now (needs [audit] signing_key_file).

    Exit status: 0 signed (or nothing new to sign), 2 no signing key or a configuration error."""
    from bus.cli.config import fail

    settings = _settings("checkpoint", config)
    if settings.audit.signing_key is None:
        fail("audit checkpoint", "no signing key: set [audit] signing_key_file or RENKEI_AUDIT_SIGNING_KEY")
    log = _open("checkpoint", settings, store)
    try:
        made = log.checkpoint()
        head = log.store.head()
    finally:
        log.close()
    if made is None:
        click.echo(f"nothing to sign: the head (record {head.seq}) is already signed or the trail is empty")
    else:
        click.echo(f"signed record {made.seq} with key {made.key_id}")


@audit.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def keygen(path: Path) -> None:
    """Write a new Ed25519 signing key to PATH (mode 0600) and its public key to PATH.pub.

    Exit status: 0 written, 2 FILE or FILE.pub exists (never overwritten) or cannot be written."""
    from bus.audit import generate_key_file
    from bus.cli.config import fail

    if path.exists() or path.with_name(path.name + ".pub").exists():
        fail("audit keygen", f"{path} or {path}.pub exists; keys are never overwritten")
    try:
        public, key_id = generate_key_file(path)
    except OSError as exc:
        fail("audit keygen", f"cannot write {path}: {exc.strerror}")
    click.echo(f"wrote {path} (private, keep it out of the repository) and {public}; key id {key_id}")


def _add_commands() -> None:
    from bus.cli.audit_migrate import migrate_command  # its own modules: this one stays small
    from bus.cli.audit_reindex import reindex_command

    audit.add_command(migrate_command)
    audit.add_command(reindex_command)


_add_commands()
