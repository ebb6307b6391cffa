"""`renkei schemas`: the schema catalog — list kinds, regenerate XSD/Avro/samples/docs."""

from __future__ import annotations

from pathlib import Path

import click

from bus.errors import ConfigError

__all__ = ["schemas"]

_ROOT = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Catalog directory (default: RENKEI_SCHEMAS_DIR, else the shipped schemas/).",
)


@click.group()
def schemas() -> None:
    """The schema catalog: kinds, versions and their generated files."""


@schemas.command()
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any generated file is out of date.")
@_ROOT
@click.option("--docs", "docs_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the catalog docs (default: docs/schemas.md beside the catalog).")
def build(check: bool, root: Path | None, docs_path: Path | None) -> None:
    """Generate <kind>.xsd, <kind>.avsc, sample .avro files and docs/schemas.md.

    Exit status: 0 built (or, with --check, up to date), 1 --check found a stale file, 2 a usage error."""
    from bus.catalog.generate import build as run_build

    try:
        result = run_build(root=root, docs_path=docs_path, check=check)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if check:
        for path in result.changed:
            click.echo(f"out of date: {path}", err=True)
        for path in result.removed:
            click.echo(f"orphaned (its .xml sample is gone): {path}", err=True)
        if not result.up_to_date:
            click.echo("run `renkei schemas build` and commit the result", err=True)
            raise SystemExit(1)
        click.echo(f"up to date ({result.unchanged} generated files)")
        return
    for path in result.changed:
        click.echo(f"wrote {path}")
    for path in result.removed:
        click.echo(f"removed {path}")
    click.echo(f"{len(result.changed)} written, {len(result.removed)} removed, {result.unchanged} unchanged")


@schemas.command("list")
@_ROOT
def list_kinds(root: Path | None) -> None:
    """Print every kind with its versions, root element and XML namespace.

    Exit status: 0, 2 a usage error."""
    from bus.catalog import Catalog

    try:
        catalog = Catalog.load(root)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    for ks in catalog:
        click.echo(f"{ks.kind:<18} v{ks.version}  {ks.root_element:<16} {ks.namespace}  {ks.label_ja}")


@schemas.command("compat")
@click.argument("kind")
@_ROOT
@click.option("--routes", "routes_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Route directory, to list the routes and projections the kind's change affects "
                   "(default: RENKEI_ROUTES_DIR, else the shipped routes/).")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="renkei.toml of the bus, to name the destinations that pin a version of KIND "
                   "([destinations.<name>] schema_version; default: RENKEI_* environment and defaults).")
def compat(kind: str, root: Path | None, routes_dir: Path | None, config: Path | None) -> None:
    """Check KIND's latest version against the earlier ones: BACKWARD, FORWARD, FULL and their
    TRANSITIVE forms (as Confluent's registry names them), for the XSD and the Avro schema, and
    name the routes, projections and pinned destinations a new version affects.

    Exit status: 0 FULL_TRANSITIVE holds in both (or one version only), 1 it does not,
    2 an unknown kind.
    """
    from bus.catalog import Catalog
    from bus.catalog.compat import compat_report
    from bus.cli.config import load_settings
    from bus.config_check import pinned_routes, pins_of
    from bus.routing.router import RouteTable

    settings = load_settings("schemas compat", config)

    try:
        catalog = Catalog.load(root)
        if kind not in catalog.kinds():
            raise click.BadParameter(f"unknown kind {kind!r}; known: {', '.join(catalog.kinds())}",
                                     param_hint="KIND")
        routes = RouteTable.load(routes_dir or settings.bus.routes_dir, catalog)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    systems = {name: c.system for name, c in settings.destinations.items()}
    pinned = pinned_routes(pins_of(settings), systems, routes.routes, kind)
    text, holds = compat_report(catalog, kind, routes, pinned)
    click.echo(text, nl=False)
    raise SystemExit(0 if holds else 1)


@schemas.command("import-mj")
@click.option("--shrink-map", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The published MJ縮退マップ JSON (MJShrinkMap.<version>.json).")
@click.option("--mji", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The published MJ文字情報一覧表, saved as CSV (UTF-8).")
@click.option("--encoding", type=click.Choice(["jisx0208", "cp932"]), default="jisx0208", show_default=True,
              help="What the receivers take: the substitutes are chosen within it.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the table (default: the catalog's charsets/mj_shukutai.tsv).")
@_ROOT
def import_mj(shrink_map: Path, mji: Path, encoding: str, out: Path | None, root: Path | None) -> None:
    """Import the published MJ縮退マップ and MJ文字情報一覧表 into the degradation table, checked;
    then load it as the character gate does.

    Exit status: 0 written, 1 a file is not in the published format (file and record named),
    2 a usage error."""
    from bus.catalog.charsets import CharacterSets
    from bus.catalog.mjimport import import_mj as run_import
    from bus.catalog.mjimport import names
    from bus.paths import schemas_dir

    folder = (root or schemas_dir()) / "charsets"
    target = out or folder / "mj_shukutai.tsv"
    try:
        report = run_import(shrink_map, mji, target, encoding)
        if out is None:
            CharacterSets.load(folder.parent)  # the table as the gate reads it
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(f"wrote {target}: {report.mapped} substitutes for {report.characters} MJ characters "
               f"({report.already} taken as they are by {encoding})")
    if report.unmappable:
        click.echo(f"no substitute within {encoding} (reported unmappable when met): {names(report.unmappable)}")
    if report.unknown:
        click.echo(f"in the map but not in the 一覧表 (ignored): {names(report.unknown)}")
