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
