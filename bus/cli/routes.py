"""`renkei routes`: check the route files, try them on a message offline, export AsyncAPI.

    renkei routes check [--dir routes/] [--config renkei.toml] [--json]
    renkei routes test change.xml [--dir routes/] [--municipality 131016] [--json] [--unmasked]
    renkei routes asyncapi [--out asyncapi.yaml]
    renkei routes election --reference-date 2026-06-25 --election-day 2026-07-12 change.xml ...

The schema catalog is the shipped one, or RENKEI_SCHEMAS_DIR.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bus.errors import ConfigError, ValidationFailed

__all__ = ["routes"]

#: how an Avro object container file begins
AVRO_MAGIC = b"Obj\x01"

F = TypeVar("F", bound=Callable[..., Any])


def _dir_option(fn: F) -> F:
    option = click.option(
        "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Directory of the route files (default: RENKEI_ROUTES_DIR, else the shipped routes/).",
    )
    return option(fn)


@click.group()
def routes() -> None:
    """Routes: which destinations a resident change reaches, and what each receives."""


@routes.command()
@_dir_option
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="renkei.toml whose destinations' pinned schema_version the 支援措置 check reads "
                   "(default: every destination takes its kinds' default version).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document: ok, routes, problems, support_measure_gaps.")
def check(directory: Path | None, config: Path | None, as_json: bool) -> None:
    """Load and check every route file; list every problem as file:line: message.

    Also names each destination that takes resident changes on a kind version without
    `support_measure` (支援措置): it learns of a 支援措置 only from jumin.shien, or never when no
    route sends it one (a warning: bus.routing.support).

    Exit status: 0 every route loads, 1 a problem (each listed), 2 a usage error."""
    from bus.catalog import Catalog
    from bus.routing.loader import check_routes
    from bus.routing.support import support_gaps

    catalog = _catalog(Catalog)
    found, errors = check_routes(directory, catalog)
    pins, systems = _pins(config)
    gaps = [] if errors else support_gaps(found, catalog, pins, systems)
    if as_json:
        click.echo(json.dumps({
            "ok": not errors,
            "routes": [] if errors else [
                {"name": r.name, "destination": r.destination, "projection": r.projection.kind,
                 "legal_basis": r.legal_basis or None, "when": " ".join(r.when.split()), "where": r.where}
                for r in sorted(found, key=lambda r: (r.destination, r.name))],
            "problems": [{"where": e.where, "message": _problem_text(e)} for e in errors],
            "support_measure_gaps": [
                {"destination": g.destination, "kind": g.kind, "version": g.version, "route": g.route,
                 "support_route": g.support_route} for g in gaps],
        }, ensure_ascii=False, indent=2))
        if errors:
            raise SystemExit(1)
        return
    if errors:
        for error in errors:
            click.echo(str(error), err=True)
        click.echo(f"{len(errors)} problem(s); no route was loaded", err=True)
        raise SystemExit(1)
    by_destination: dict[str, list[Any]] = {}
    for route in sorted(found, key=lambda r: (r.destination, r.name)):
        by_destination.setdefault(route.destination, []).append(route)
    files = len({r.where.rsplit(":", 1)[0] for r in found})
    click.echo(f"ok: {len(found)} routes in {files} files, {len(by_destination)} destinations")
    for destination, group in by_destination.items():
        click.echo(f"  {destination}  ({len(group)} route{'s' if len(group) != 1 else ''})")
        for r in group:
            basis = "個人番号: yes (legal basis declared)" if r.legal_basis else "個人番号: no"
            click.echo(f"    {r.name} → {r.projection.kind}  [{basis}]")
            click.echo(f"      when: {' '.join(r.when.split())}")
    if gaps:
        click.echo(f"支援措置 (support_measure): {len(gaps)} destination(s) take resident changes on a kind "
                   "version without it (pin schema_version = 2 to carry it in every change)")
        for gap in gaps:
            click.echo(f"  {gap.text()}")


def _pins(config: Path | None) -> tuple[dict[str, int], dict[str, str]]:
    """The pinned versions and systems of `config`'s destinations (none without a config)."""
    if config is None:
        return {}, {}
    from bus.config_check import pins_of
    from bus.settings import Settings

    try:
        settings = Settings.load(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    return pins_of(settings), {n: c.system for n, c in settings.destinations.items() if c.system}


def _problem_text(error: ConfigError) -> str:
    """The error's text without its `where` prefix (JSON gives `where` on its own)."""
    text = str(error)
    return text[len(error.where) + 2:] if error.where and text.startswith(f"{error.where}: ") else text


@routes.command("test")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_dir_option
@click.option("--municipality", default=None,
              help="Municipality of the message (default: its municipality_code).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@click.option("--unmasked", is_flag=True, help="Show personal values in plain text (default: masked).")
def test(file: Path, directory: Path | None, municipality: str | None, as_json: bool, unmasked: bool) -> None:
    """Route one jumin.idou (or jumin.shien) XML file offline: which destinations it reaches, why, and what
    each receives.

    Personal values (the fields the catalog marks personal) are masked unless --unmasked;
    nothing is sent anywhere.

    Exit status: 0 routed (to any number of destinations), 1 the file is not a valid change or
    the route files are broken, 2 a usage error (an Avro file: it takes XML) or a projection
    that does not validate (a route's bug).
    """
    from bus.catalog import Catalog
    from bus.masking import mask_record
    from bus.routing.router import RouteTable
    from bus.validation.validator import validate

    raw = file.read_bytes()
    if raw.startswith(AVRO_MAGIC) or file.suffix.lower() == ".avro":
        raise click.UsageError(f"{file} is Avro; `routes test` takes one jumin.idou XML file "
                               "(`renkei sample jumin.idou` writes one)")
    catalog = _catalog(Catalog)
    try:
        table = RouteTable.load(directory, catalog)
    except ConfigError as exc:
        raise click.ClickException(f"{exc}\n(run `renkei routes check` for the full list)") from exc
    kind = "jumin.shien" if b"urn:renkei:schema:jumin.shien:" in raw else "jumin.idou"  # a 支援措置, or a change
    try:
        validated = validate(raw, content_type="application/xml", kind=kind, catalog=catalog)
    except ValidationFailed as exc:
        for issue in exc.issues:
            click.echo(f"{file}: {issue}", err=True)
        click.echo(f"{file} is not a valid {kind} message; nothing was routed", err=True)
        raise SystemExit(1) from None
    record = validated.record
    where = municipality or str(record.get("municipality_code", ""))
    context = table.context(record, where)
    verdicts = table.explain(record, where, kind=kind)
    matches = table.route(record, where, kind=kind)
    messages = [_message(m, masked=not unmasked) for m in matches]
    if not unmasked:
        context = dict(mask_record(context))  # type: ignore[call-overload]
    if as_json:
        click.echo(json.dumps({
            "file": str(file),
            "municipality": where,
            "context": context,
            "routes": [{"route": v.route.name, "destination": v.route.destination, "matched": v.matched,
                        "why": v.reason, "when": v.route.when, "where": v.route.where} for v in verdicts],
            "messages": messages,
        }, ensure_ascii=False, indent=2))
    else:
        _print_text(file, where, context, verdicts, messages)
    if any(m["valid"] is not True for m in messages):
        raise SystemExit(2)


def _message(match: Any, *, masked: bool) -> dict[str, Any]:
    from lxml import etree

    from bus.masking import mask_xml

    target = match.target
    xml: bytes = target.to_xml(match.record)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(xml, parser)
    try:
        target.xml_schema.assertValid(root)
        valid: bool | str = True
    except etree.DocumentInvalid as exc:
        valid = str(exc)
    except ConfigError as exc:
        valid = f"not checked: {exc}"
    return {
        "route": match.route.name,
        "destination": match.route.destination,
        "kind": target.kind,
        "version": target.version,
        "legal_basis": match.route.legal_basis,
        "valid": valid,
        "xml": mask_xml(xml) if masked else etree.tostring(root, pretty_print=True, encoding="unicode"),
    }


def _print_text(file: Path, municipality: str, context: dict[str, Any], verdicts: list[Any],
                messages: list[dict[str, Any]]) -> None:
    matched = [v for v in verdicts if v.matched]
    what = f"{context['reason']} ({context['group']}) on {context['effective_date']}" if context["reason"] \
        else "a 支援措置 (jumin.shien, no 異動)"
    click.echo(f"{file}: {what}, municipality {municipality}")
    shown = ", ".join(f"{k}={v}" for k, v in context.items() if k not in ("reason", "group"))
    click.echo(f"context: {shown}")
    click.echo(f"reaches {len({v.route.destination for v in matched})} destination(s) "
               f"by {len(matched)} of {len(verdicts)} routes:")
    for v in verdicts:
        mark = "✓" if v.matched else "·"
        click.echo(f"  {mark} {v.route.destination:<8} {v.route.name}: {v.reason}")
        click.echo(f"      when: {' '.join(v.route.when.split())}")
        if v.route.description:
            click.echo(f"      rule: {v.route.description}")
    for m in messages:
        basis = m["legal_basis"] or "none (no 個人番号)"
        click.echo(f"\n--- {m['destination']} ← {m['route']}: {m['kind']} v{m['version']}; "
                   f"legal basis: {basis}")
        if m["valid"] is not True:
            click.echo(f"!!! the projection does not validate against {m['kind']}: {m['valid']}")
        click.echo(m["xml"].rstrip())


@routes.command()
@_dir_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (.json for JSON, else YAML); default: print YAML.")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="renkei.toml of the bus: its destinations (and tenancy) decide the queues "
                   "(default: RENKEI_* environment and defaults).")
def asyncapi(directory: Path | None, out: Path | None, config: Path | None) -> None:
    """Export the routes as an AsyncAPI 2.6 document (a channel per queue the bus publishes
    to: with tenancy, one per configured destination of each route's system).

    Exit status: 0 written, 1 broken route files, 2 a usage or configuration error."""
    import yaml

    from bus.catalog import Catalog
    from bus.cli.config import load_settings
    from bus.routing.asyncapi import asyncapi_document
    from bus.routing.router import RouteTable
    from bus.tenancy import Tenancy

    settings = load_settings("routes asyncapi", config)
    catalog = _catalog(Catalog)
    try:
        table = RouteTable.load(directory or settings.bus.routes_dir, catalog)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    document = asyncapi_document(table, tenancy=Tenancy(settings.destinations, strict=settings.multi_tenant))
    if out is not None and out.suffix == ".json":
        text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    else:
        text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=110)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out} ({len(document['channels'])} channels)")


@routes.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reference-date", required=True, type=click.DateTime(["%Y-%m-%d"]), help="登録基準日 of the election.")
@click.option("--election-day", required=True, type=click.DateTime(["%Y-%m-%d"]), help="選挙の期日.")
def election(files: tuple[Path, ...], reference_date: Any, election_day: Any) -> None:
    """選挙時登録 (公職選挙法 第22条): for each jumin.idou XML FILE (the person's latest record),
    whether the person is registered for the election, and why.

    Exit status: 0 every file was judged, 1 a file is not a valid jumin.idou message, 2 a usage
    error (a 登録基準日 after the 選挙の期日 among them)."""
    from bus.catalog import Catalog
    from bus.routing.election import Election, election_registration
    from bus.validation.validator import validate

    catalog = _catalog(Catalog)
    try:
        chosen = Election(reference_date.date(), election_day.date())
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    failed = registered = 0
    for file in files:
        try:
            record = validate(file.read_bytes(), content_type="application/xml", kind="jumin.idou",
                              catalog=catalog).record
        except ValidationFailed as exc:
            failed += 1
            click.echo(f"{file}: not a valid jumin.idou message ({', '.join(i.code for i in exc.issues)})", err=True)
            continue
        verdict = election_registration(record, chosen)
        registered += verdict.registered
        click.echo(f"{'✓' if verdict.registered else '·'} {file}: {'; '.join(verdict.reasons)}")
    click.echo(f"{registered} of {len(files) - failed} registered at the 選挙時登録 "
               f"(登録基準日 {chosen.reference_date}, 選挙の期日 {chosen.election_day})")
    if failed:
        raise SystemExit(1)


def _catalog(catalog_class: Any) -> Any:
    try:
        return catalog_class.load()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
