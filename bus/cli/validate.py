"""`renkei validate FILE...`: check files against the platform schemas, as the bus would.

    renkei validate change.xml                       change.xml: valid (jumin.idou v1)
    renkei validate bad.xml                          bad.xml:13:5: R300 /ResidentChange/change/reason: …
    renkei validate --kind jumin.idou body.avro      Avro bodies name no schema: say the kind
    renkei validate --json *.xml                     one JSON document with a result per file
    renkei validate --explain bad.xml                each schema error as the XSD states it: the
                                                     schema path, the content model expected

Exit status: 0 every file valid, 1 any file invalid, 2 usage error (missing file, unknown
kind, an Avro file without --kind). Hostile or broken input is reported as invalid, never as a
traceback; personal values in messages are masked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from bus.validation.issues import Issue

__all__ = ["validate"]

_XML_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


@dataclass
class _Result:
    file: str
    content_type: str | None
    kind: str | None = None
    version: int | None = None
    issues: list[Issue] = field(default_factory=list)
    explained: list[Any] | None = None  # --explain: bus.validation.xsd_explain.Explanation per schema error

    @property
    def valid(self) -> bool:
        return not self.issues

    def to_dict(self) -> dict[str, Any]:
        document = {"file": self.file, "valid": self.valid, "content_type": self.content_type,
                    "kind": self.kind, "version": self.version, "issues": [i.to_dict() for i in self.issues]}
        if self.explained is not None:
            document["explain"] = [e.to_dict() for e in self.explained]
        return document


def _content_type(path: Path, head: bytes, kind: str | None) -> str | None:
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return "application/xml"
    if suffix == ".avro":
        return "application/avro"
    if head.lstrip().startswith(b"<") or head.startswith(_XML_BOMS) or head.startswith((b"<\x00", b"\x00<")):
        return "application/xml"
    return "application/avro" if kind else None


def _read(path: Path, max_size: int) -> tuple[bytes, int]:
    """At most max_size + 1 bytes of the file, and its size: a huge file is never read whole."""
    with path.open("rb") as fh:
        return fh.read(max_size + 1), path.stat().st_size


def _check(path: Path, kind: str | None, max_size: int, catalog: Any) -> _Result:
    from bus.errors import ValidationFailed
    from bus.validation.validator import Limits
    from bus.validation.validator import validate as run

    raw, size = _read(path, max_size)
    content_type = _content_type(path, raw[:64], kind)
    result = _Result(str(path), content_type)
    if size > max_size:
        result.issues.append(Issue("R100", f"file is {size} bytes, larger than the limit of {max_size} bytes",
                                   expected=f"at most {max_size} bytes (see --max-size)"))
        return result
    if content_type is None:
        result.issues.append(Issue("R220", "cannot tell whether this is XML or Avro",
                                   expected="a .xml or .avro file, or --kind for an Avro body"))
        return result
    try:
        validated = run(raw, content_type=content_type, kind=kind, catalog=catalog,
                        limits=Limits(max_bytes=max_size))
    except ValidationFailed as failed:
        result.issues.extend(failed.issues)
        return result
    except Exception as exc:  # never a traceback for a vendor's file; the type tells a maintainer enough
        code = "R212" if content_type == "application/avro" else "R200"
        result.issues.append(Issue(code, f"cannot be validated ({type(exc).__name__}); please report this"))
        return result
    result.kind, result.version = validated.kind_schema.kind, validated.kind_schema.version
    return result


def _explain(results: list[_Result], catalog: Any, max_size: int) -> None:
    from bus.validation.xsd_explain import explain

    for result in results:
        if result.content_type == "application/xml" and any(i.code.startswith("R3") for i in result.issues):
            raw, size = _read(Path(result.file), max_size)
            result.explained = explain(raw, catalog) if size <= max_size else []


def _line(result: _Result, issue: Issue) -> str:
    where = result.file
    if issue.line is not None:
        where += f":{issue.line}" + (f":{issue.column}" if issue.column is not None else "")
    text = f"{where}: {issue.code} {issue.path or '/'}: {issue.message}"
    extra = []
    if issue.value is not None:
        extra.append(f"value {issue.value}")
    if issue.expected:
        extra.append(f"expected {issue.expected}")
    return text + (f" ({', '.join(extra)})" if extra else "")


@click.command("validate")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--kind", default=None, help="The kind the files must be (required for Avro bodies).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document with a result per file.")
@click.option("--max-size", type=click.IntRange(min=1), default=1 << 20, show_default=True,
              metavar="BYTES", help="Reject files larger than this (R100).")
@click.option("--explain", is_flag=True,
              help="For each schema error of an XML file, what the XSD says: the schema's own path to "
                   "the rule and the content model, pattern or codes it expects (xmlschema).")
def validate(files: tuple[Path, ...], kind: str | None, as_json: bool, max_size: int, explain: bool) -> None:
    """Validate FILE... (XML or schemaless Avro) against the schema catalog.

    Exit status: 0 every file valid, 1 a file invalid, 2 a usage error."""
    from bus.catalog import Catalog
    from bus.errors import ConfigError

    try:
        catalog = Catalog.load()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if kind is not None and kind not in catalog.kinds():
        raise click.UsageError(f"unknown kind {kind!r}; known kinds: {', '.join(catalog.kinds())}")
    if kind is None:
        avro = [str(f) for f in files if f.suffix.lower() == ".avro"]
        if avro:
            raise click.UsageError(f"Avro bodies name no schema: give --kind for {', '.join(avro)}")
    results = [_check(path, kind, max_size, catalog) for path in files]
    if explain:
        _explain(results, catalog, max_size)
    if as_json:
        doc = {"valid": all(r.valid for r in results), "files": [r.to_dict() for r in results]}
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        for result in results:
            if result.valid:
                click.echo(f"{result.file}: valid ({result.kind} v{result.version})")
            for issue in result.issues:
                click.echo(_line(result, issue))
            for why in result.explained or []:
                click.echo(f"  {why.path}: the schema ({why.schema_path}) expects {why.expected}: {why.reason}")
    if not all(r.valid for r in results):
        raise SystemExit(1)
