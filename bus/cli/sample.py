"""`renkei sample`: valid sample messages of a kind, from the synthetic registry.

    renkei sample jumin.idou --event TENSHUTSU            # one XML message to stdout
    renkei sample jumin.idou --event decrease -n 50 --out samples/
    renkei sample kaigo.jumin -n 10 --format avro --out samples/ --seed 7

Every sample is validated (bus.validation.validator) before it is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from lxml import etree

from bus.catalog import Catalog
from bus.errors import ConfigError, ValidationFailed
from bus.synthetic.places import MUNICIPALITIES
from bus.synthetic.registry import expand_reasons
from bus.synthetic.samples import PROJECTION_KINDS, SOURCE_KIND, sample_records
from bus.validation.validator import validate

__all__ = ["sample"]

_TYPES = {"xml": "application/xml", "avro": "application/avro"}


@click.command("sample")
@click.argument("kind")
@click.option("--event", "events", multiple=True, metavar="EVENT",
              help="異動事由 symbol (e.g. TENNYU, SHIBOU) or group (increase, decrease, correction); "
                   "repeatable. For jumin.idou and the projection kinds.")
@click.option("-n", "count", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many samples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same samples.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the files <kind>-<seq>.<xml|avro>; without it, one sample goes to stdout.")
@click.option("--format", "fmt", type=click.Choice(sorted(_TYPES)), default="xml", show_default=True)
@click.option("--pretty/--compact", default=True, show_default=True, help="Indent XML output.")
@click.option("--municipality", metavar="CODE",
              help="地方公共団体コード of the registry to sample from (default: four large cities).")
def sample(kind: str, events: tuple[str, ...], count: int, seed: int, out: Path | None, fmt: str,
           pretty: bool, municipality: str | None) -> None:
    """Write valid sample messages of KIND (jumin.idou, zei.jumin, ..., portal.shinsei).

    jumin.idou samples are changes of a synthetic registry (realistic households, valid
    check digits, consistent dates and 履歴番号). Projection kinds copy such changes into the
    kind's fields, choosing people the default route would send (kaigo.jumin: aged 40+).
    portal.oshirase and portal.shinsei samples are built from the same people.

    Exit status: 0 written, 2 a usage error (an unknown kind or event; Avro to a terminal).
    """
    catalog = _catalog()
    if kind not in catalog.kinds():
        known = ", ".join(catalog.kinds())
        raise click.BadParameter(f"unknown kind {kind!r}; known: {known}", param_hint="KIND")
    if events and kind != SOURCE_KIND and kind not in PROJECTION_KINDS:
        raise click.BadParameter(f"--event does not apply to {kind}", param_hint="--event")
    if events:
        try:
            expand_reasons(events)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--event") from None
    if municipality is not None and municipality not in MUNICIPALITIES:
        raise click.BadParameter(f"{municipality!r} is not a municipality of the synthetic registry; "
                                 f"known: {', '.join(MUNICIPALITIES)}", param_hint="--municipality")
    if out is None and count > 1:
        raise click.UsageError("more than one sample needs --out DIR (one file per sample)")
    if out is None and fmt == "avro" and sys.stdout.isatty():
        raise click.UsageError("Avro is binary and stdout is a terminal: give --out DIR, or redirect "
                               "(renkei sample jumin.idou --format avro > change.avro)")
    ks = catalog.get(kind)
    records = sample_records(kind, catalog, seed=seed, n=count, reasons=events or None,
                             municipality=municipality)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    written = 0
    for seq, record in enumerate(records, 1):
        body = ks.to_avro(record) if fmt == "avro" else _xml(ks.to_xml(record), pretty)
        _check(body, _TYPES[fmt], kind, catalog)
        if out is None:
            click.echo(body, nl=fmt != "avro")  # bytes go to the binary stdout as they are
        else:
            (out / f"{kind}-{seq:06d}.{fmt}").write_bytes(body)
        written += 1
    if out is not None:
        click.echo(f"wrote {written} {kind} sample(s) to {out}", err=True)


def _xml(body: bytes, pretty: bool) -> bytes:
    if not pretty:
        return body
    root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _catalog() -> Catalog:
    try:
        return Catalog.load()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _check(body: bytes, content_type: str, kind: str, catalog: Catalog) -> None:
    try:
        validate(body, content_type=content_type, kind=kind, catalog=catalog)
    except ValidationFailed as exc:  # a bug in the generator, not in the user's input
        issues = "; ".join(str(i) for i in exc.issues)
        raise click.ClickException(f"generated an invalid {kind} sample (please report): {issues}") from exc
