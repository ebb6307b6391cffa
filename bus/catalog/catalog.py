"""The schema catalog: every kind and version under `schemas/` (DESIGN §3).

    cat = Catalog.load()                  # bus.paths.schemas_dir(), or Catalog.load(root=Path)
    cat.kinds()                           # ['chukan.fukuhon', 'fukushi.jumin', 'jumin.idou', ...]
    ks = cat.get("jumin.idou")            # latest version; cat.get("jumin.idou", 1)
    ks = cat.by_namespace("urn:renkei:schema:jumin.idou:1")

Loading reads only the YAML specs; each kind compiles its XSD and Avro schema on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from bus.catalog.charsets import CharacterSets, charsets_for
from bus.catalog.codelists import CodeLists
from bus.catalog.kind import KindSchema
from bus.catalog.spec import load_spec
from bus.errors import ConfigError
from bus.paths import schemas_dir

__all__ = ["Catalog"]


class Catalog:
    def __init__(self, root: Path, codelists: CodeLists, schemas: list[KindSchema]) -> None:
        self.root = root
        self.codelists = codelists
        self._by_kind: dict[str, dict[int, KindSchema]] = {}
        self._by_namespace: dict[str, KindSchema] = {}
        for ks in schemas:
            self._by_kind.setdefault(ks.kind, {})[ks.version] = ks
            self._by_namespace[ks.namespace] = ks

    @classmethod
    def load(cls, root: Path | None = None) -> Catalog:
        """Read `codelists.yaml` and every `<kind>/<version>/fields.yaml` under `root`."""
        root = Path(root) if root is not None else schemas_dir()
        if not (root / "codelists.yaml").is_file():
            raise ConfigError(
                "no schema catalog here (codelists.yaml missing); set RENKEI_SCHEMAS_DIR", where=str(root)
            )
        codelists = CodeLists.load(root / "codelists.yaml")
        specs = [load_spec(path, codelists) for path in sorted(root.glob("*/*/fields.yaml"))]
        return cls(root, codelists, [KindSchema(spec, codelists) for spec in specs])

    @property
    def charsets(self) -> CharacterSets:
        """The registered character sets and degradation map of `charsets/` (read once)."""
        return charsets_for(self.root)

    def kinds(self) -> list[str]:
        return sorted(self._by_kind)

    def versions(self, kind: str) -> list[int]:
        return sorted(self._versions(kind))

    def get(self, kind: str, version: int | None = None) -> KindSchema:
        """The kind at `version` (when None: the latest released one, a `status: preview` version
        only if there is nothing else); ConfigError naming what exists otherwise."""
        versions = self._versions(kind)
        if version is None:
            released = [v for v, ks in versions.items() if not ks.spec.preview] or list(versions)
            return versions[max(released)]
        try:
            return versions[int(version)]
        except (KeyError, ValueError):
            known = ", ".join(str(v) for v in sorted(versions))
            raise ConfigError(f"kind {kind!r} has no version {version!r}; known versions: {known}",
                              where=str(self.root)) from None

    def compile_schemas(self, kinds: Iterable[str]) -> None:
        """Compile the XSD of every version of `kinds` now (each is compiled once, at first use):
        the router does it as it starts, so that no change waits for it (a few ms a kind, 37 ms
        for all of them; made in the first changes' time they held the event loop, bench/README.md,
        stop 28). A kind the catalog does not have is left to the route table's own errors."""
        for kind in kinds:
            for schema in self._by_kind.get(kind, {}).values():
                schema.xml_schema  # noqa: B018 (a cached_property: compiled here)

    def by_namespace(self, namespace: str) -> KindSchema:
        """The kind whose XML namespace is `namespace` (``urn:renkei:schema:<kind>:<version>``)."""
        try:
            return self._by_namespace[namespace]
        except KeyError:
            known = ", ".join(sorted(self._by_namespace))
            raise ConfigError(f"no kind has the XML namespace {namespace!r}; known: {known}",
                              where=str(self.root)) from None

    def __iter__(self) -> Iterator[KindSchema]:
        """Every kind at every version, by kind then version."""
        for kind in self.kinds():
            versions = self._by_kind[kind]
            for version in sorted(versions):
                yield versions[version]

    def _versions(self, kind: str) -> dict[int, KindSchema]:
        try:
            return self._by_kind[kind]
        except KeyError:
            raise ConfigError(f"unknown kind {kind!r}; known kinds: {', '.join(self.kinds())}",
                              where=str(self.root)) from None
