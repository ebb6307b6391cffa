"""`renkei schemas build`: write every generated catalog file from the hand-written ones.

Inputs (written by hand): `schemas/codelists.yaml`, `schemas/<kind>/<version>/fields.yaml`,
`schemas/<kind>/<version>/samples/valid/*.xml`.
Outputs (generated, committed): `<kind>.xsd`, `<kind>.avsc`, `samples/valid/<name>.avro`
(the schemaless Avro body of each valid XML sample) and docs/schemas.md.

`build(check=True)` writes nothing and returns the files that are out of date; the CLI
exits 1 when that list is not empty. Each valid sample must validate against the freshly
rendered XSD, or the build fails naming it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import fastavro
from lxml import etree

from bus.catalog.avro import avro_schema, render_avsc
from bus.catalog.codec import XmlCodec
from bus.catalog.codelists import CodeLists
from bus.catalog.docs import render_docs
from bus.catalog.kind import safe_xml_parser
from bus.catalog.spec import KindSpec, load_spec
from bus.catalog.xsd import render_xsd
from bus.errors import ConfigError
from bus.paths import schemas_dir

__all__ = ["BuildResult", "build", "default_docs_path", "render_all"]


@dataclass
class BuildResult:
    """What a build changed (or, with check=True, what is out of date)."""

    changed: list[Path] = field(default_factory=list)  # written, or stale in check mode
    removed: list[Path] = field(default_factory=list)  # orphaned generated files
    unchanged: int = 0

    @property
    def up_to_date(self) -> bool:
        return not self.changed and not self.removed


def default_docs_path(root: Path) -> Path | None:
    """docs/schemas.md beside the catalog in a checkout; None when there is no docs/ dir."""
    docs = root.parent / "docs"
    return docs / "schemas.md" if docs.is_dir() else None


def render_all(root: Path, docs_path: Path | None) -> tuple[dict[Path, bytes], list[Path]]:
    """Every generated file's expected content, and the orphaned generated files."""
    codelists = CodeLists.load(root / "codelists.yaml")
    specs = [load_spec(path, codelists) for path in sorted(root.glob("*/*/fields.yaml"))]
    outputs: dict[Path, bytes] = {}
    orphans: list[Path] = []
    for spec in specs:
        directory = spec.source.parent
        xsd = render_xsd(spec, codelists)
        avro = avro_schema(spec, codelists)
        outputs[directory / f"{spec.kind}.xsd"] = xsd
        outputs[directory / f"{spec.kind}.avsc"] = render_avsc(spec, codelists)
        valid = directory / "samples" / "valid"
        outputs.update(_avro_samples(spec, xsd, avro, valid))
        orphans += [p for p in sorted(valid.glob("*.avro")) if not p.with_suffix(".xml").is_file()]
    if docs_path is not None:
        outputs[docs_path] = render_docs(specs, codelists).encode("utf-8")
    return outputs, orphans


def build(root: Path | None = None, docs_path: Path | None = None, check: bool = False) -> BuildResult:
    """Regenerate the catalog's files under `root` (default: bus.paths.schemas_dir()).

    `docs_path` defaults to docs/schemas.md beside the catalog when that directory exists.
    """
    root = Path(root) if root is not None else schemas_dir()
    if docs_path is None:
        docs_path = default_docs_path(root)
    outputs, orphans = render_all(root, docs_path)
    result = BuildResult(removed=orphans)
    for path, content in outputs.items():
        if path.is_file() and path.read_bytes() == content:
            result.unchanged += 1
            continue
        result.changed.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    if not check:
        for path in orphans:
            path.unlink()
    return result


def _avro_samples(spec: KindSpec, xsd: bytes, avro: dict[str, object], valid: Path) -> dict[Path, bytes]:
    samples = sorted(valid.glob("*.xml"))
    if not samples:
        return {}
    parser = safe_xml_parser()
    schema = etree.XMLSchema(etree.fromstring(xsd, parser))
    parsed = fastavro.parse_schema(avro)
    codec = XmlCodec(spec)
    out: dict[Path, bytes] = {}
    for sample in samples:
        try:
            doc = etree.parse(str(sample), parser)
        except etree.XMLSyntaxError as exc:
            raise ConfigError(f"valid sample is not well-formed: {exc}", where=str(sample)) from exc
        try:
            schema.assertValid(doc)
        except etree.DocumentInvalid as exc:
            raise ConfigError(f"valid sample does not validate: {exc}", where=str(sample)) from exc
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, codec.from_xml(doc.getroot()))
        out[sample.with_suffix(".avro")] = buf.getvalue()
    return out
