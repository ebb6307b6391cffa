"""Schema versions: is a new version of a kind compatible with the earlier ones?

The names are Confluent Schema Registry's:

- BACKWARD: a reader on the new version reads what the previous version wrote;
- FORWARD: a reader on the previous version reads what the new version writes;
- FULL: both; ``*_TRANSITIVE``: against every earlier version, not just the previous one.

Both schema languages are judged, from the field specs they are generated from (fields.yaml),
with each language's own rules: an XSD reader refuses an element it does not know and
checks the facets (lengths, patterns, ranges) and the order of a sequence; an Avro reader
skips a field it does not know and ignores order, but the bus checks the same facets on
Avro bodies (R301). So a field added as optional is BACKWARD for both and FORWARD for
Avro only. A reader needs every field it requires to be written; a type or code list must
be the same; a facet may only widen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from bus.catalog.spec import Field

__all__ = ["MODES", "Finding", "Pair", "can_read", "compat_report"]

Language = Literal["xsd", "avro"]
MODES = ("BACKWARD", "FORWARD", "FULL", "BACKWARD_TRANSITIVE", "FORWARD_TRANSITIVE", "FULL_TRANSITIVE")
_LOWER = ("minLength", "minInclusive")
_UPPER = ("maxLength", "maxInclusive", "totalDigits")


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a reader cannot read a writer's data: the field path and the reason."""

    language: Language
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.language}: {self.path}: {self.reason}"


def can_read(reader: tuple[Field, ...], writer: tuple[Field, ...], prefix: str = "") -> list[Finding]:
    """Every reason data written with `writer`'s fields is not readable with `reader`'s."""
    found: list[Finding] = []
    theirs = {f.name: f for f in writer}
    ours = {f.name: f for f in reader}
    for f in reader:
        path = f"{prefix}/{f.name}"
        w = theirs.get(f.name)
        if w is None:
            if not f.optional:
                found += [Finding(lang, path, "required here, never written by the other version")
                          for lang in ("xsd", "avro")]
            continue
        if w.optional and not f.optional:
            found += [Finding(lang, path, "required here, optional in the other version") for lang in ("xsd", "avro")]
        found += _same_type(f, w, path)
    for w in writer:
        if w.name not in ours:
            found.append(Finding("xsd", f"{prefix}/{w.name}", "written by the other version, unknown here "
                                 "(an XSD sequence refuses it)"))
    common = [n for n in (f.name for f in writer) if n in ours]
    if common != [n for n in (f.name for f in reader) if n in theirs]:
        found.append(Finding("xsd", prefix or "/", "the shared fields are in another order"))
    return found


def _same_type(reader: Field, writer: Field, path: str) -> list[Finding]:
    if reader.type != writer.type:
        return [Finding(lang, path, f"{writer.type} there, {reader.type} here") for lang in ("xsd", "avro")]
    if reader.codelist != writer.codelist:
        return [Finding(lang, path, f"code list {writer.codelist} there, {reader.codelist} here")
                for lang in ("xsd", "avro")]
    if reader.type == "record":
        return can_read(reader.children, writer.children, path)
    if reader.type == "list" and reader.item is not None and writer.item is not None:
        return _same_type(reader.item, writer.item, path + "[]")
    found: list[Finding] = []
    for facet in (*_LOWER, *_UPPER, "pattern", "minExclusive", "maxExclusive"):
        mine, theirs = reader.facets.get(facet), writer.facets.get(facet)
        if mine is None or mine == theirs:
            continue
        narrower = theirs is None or not _wider(facet, mine, theirs)
        if narrower:
            found += [Finding(lang, path, f"{facet} {theirs!r} there, {mine!r} here: narrower")
                      for lang in ("xsd", "avro")]
    return found


def _wider(facet: str, mine: str | int, theirs: str | int) -> bool:
    """Does the reader's facet accept every value the writer's did? (Patterns: only if equal.)"""
    try:
        a, b = float(mine), float(theirs)
    except ValueError:
        return False
    return (facet in _LOWER and a <= b) or (facet in _UPPER and a >= b)


@dataclass(frozen=True, slots=True)
class Pair:
    """One version read against an earlier one, both ways."""

    new: int
    old: int
    backward: list[Finding]  # new reads old
    forward: list[Finding]  # old reads new


def pairs(catalog: Any, kind: str) -> Iterator[Pair]:
    versions = catalog.versions(kind)
    for i, new in enumerate(versions):
        for old in versions[:i]:
            n, o = catalog.get(kind, new).fields, catalog.get(kind, old).fields
            yield Pair(new, old, can_read(n, o), can_read(o, n))


def verdicts(found: list[Pair], language: Language) -> dict[str, bool]:
    """mode → holds, for the latest version against the earlier ones, in one schema language."""
    if not found:
        return {}
    latest = max(p.new for p in found)
    mine = [p for p in found if p.new == latest]
    last = max(mine, key=lambda p: p.old)

    def ok(pairs_: list[Pair], way: str) -> bool:
        return all(not [f for f in getattr(p, way) if f.language == language] for p in pairs_)

    result = {"BACKWARD": ok([last], "backward"), "FORWARD": ok([last], "forward"),
              "BACKWARD_TRANSITIVE": ok(mine, "backward"), "FORWARD_TRANSITIVE": ok(mine, "forward")}
    result["FULL"] = result["BACKWARD"] and result["FORWARD"]
    result["FULL_TRANSITIVE"] = result["BACKWARD_TRANSITIVE"] and result["FORWARD_TRANSITIVE"]
    return {mode: result[mode] for mode in MODES}


def compat_report(catalog: Any, kind: str, routes: Any = None, pinned: list[str] | None = None) -> tuple[str, bool]:
    """The text `renkei schemas compat KIND` prints, and whether FULL_TRANSITIVE holds in both.

    `pinned`: the destinations that pin a version of `kind` (bus.config_check.pinned_routes), which
    a new version does not reach until their pin moves."""
    versions = catalog.versions(kind)
    lines = [f"{kind}: versions {', '.join(map(str, versions))}"]
    found = list(pairs(catalog, kind))
    holds = True
    if not found:
        lines.append("one version only: nothing to compare (a new version goes in schemas/"
                     f"{kind}/{versions[-1] + 1}/fields.yaml, then `renkei schemas build`)")
    else:
        latest = versions[-1]
        lines.append(f"version {latest} against {', '.join(str(v) for v in versions[:-1])}:")
        for language in ("xsd", "avro"):
            result = verdicts(found, language)
            holds = holds and result["FULL_TRANSITIVE"]
            lines.append(f"  {language:4}  " + "  ".join(f"{m} {'yes' if ok else 'NO'}" for m, ok in result.items()))
        for pair in found:
            for way, items in (("backward", pair.backward), ("forward", pair.forward)):
                lines += [f"  v{pair.new} {way} v{pair.old}: {f}" for f in items]
    if routes is not None:
        takes = sorted(f"{r.name} → {r.destination}" for r in routes.routes if r.takes == kind)
        makes = sorted(f"{r.name} → {r.destination}" for r in routes.routes if r.projection.kind == kind)
        lines.append(f"routes taking {kind}: {', '.join(takes) or 'none'}")
        lines.append(f"projections to {kind}: {', '.join(makes) or 'none'}")
    if pinned is not None:
        lines.append(f"destinations pinning a version of {kind}: {', '.join(pinned) or 'none (all take the latest)'}")
    return "\n".join(lines) + "\n", holds
