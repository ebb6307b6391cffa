"""One kind at one version: its files, compiled schemas and codecs.

    ks = Catalog.load().get("jumin.idou")
    ks.xml_schema.validate(doc)            # lxml XMLSchema, the hot path
    record = ks.from_xml(doc.getroot())    # typed dict
    body = ks.to_avro(record)              # schemaless Avro, what the queues carry

The XSD and Avro schema are compiled on first use and cached on the instance.
"""

from __future__ import annotations

import io
import json
from functools import cached_property
from typing import Any

import fastavro
from lxml import etree

from bus.catalog.codec import XmlCodec
from bus.catalog.codelists import CodeLists
from bus.catalog.facets import FacetChecker, Violation
from bus.catalog.spec import Field, KindSpec
from bus.errors import ConfigError

__all__ = ["KindSchema", "safe_xml_parser"]


def safe_xml_parser() -> etree.XMLParser:
    """A parser for catalog files: no network, no entities, no DTD loading."""
    return etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False, huge_tree=False)


class KindSchema:
    """A kind's schema files and codecs (see docs/architecture.md for the record shape)."""

    def __init__(self, spec: KindSpec, codelists: CodeLists) -> None:
        self.spec = spec
        self.kind = spec.kind
        self.version = spec.version
        self.namespace = spec.namespace
        self.root_element = spec.root_element
        self.root_tag = f"{{{spec.namespace}}}{spec.root_element}"  # Clark notation
        self.label_ja = spec.label_ja
        directory = spec.source.parent
        self.directory = directory
        self.xsd_path = directory / f"{spec.kind}.xsd"
        self.avsc_path = directory / f"{spec.kind}.avsc"
        self.samples_dir = directory / "samples"
        self._codelists = codelists
        self._codec = XmlCodec(spec)
        self._facets = FacetChecker(spec.fields, codelists)

    def __repr__(self) -> str:
        return f"<KindSchema {self.kind} v{self.version}>"

    @property
    def fields(self) -> tuple[Field, ...]:
        """The top-level fields in wire order; records hold `children`, lists an `item`."""
        return self.spec.fields

    @cached_property
    def xml_schema(self) -> etree.XMLSchema:
        try:
            doc = etree.parse(str(self.xsd_path), safe_xml_parser())
            return etree.XMLSchema(doc)
        except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
            raise ConfigError(f"cannot load the XSD ({exc}); run `renkei schemas build`",
                              where=str(self.xsd_path)) from exc

    @cached_property
    def avro_schema(self) -> Any:
        """The parsed fastavro schema (as `fastavro.parse_schema` returns it)."""
        try:
            raw = json.loads(self.avsc_path.read_text(encoding="utf-8"))
            return fastavro.parse_schema(raw)
        except (OSError, ValueError, fastavro.schema.SchemaParseException) as exc:
            raise ConfigError(f"cannot load the Avro schema ({exc}); run `renkei schemas build`",
                              where=str(self.avsc_path)) from exc

    def to_xml(self, record: dict[str, Any]) -> bytes:
        """UTF-8 XML with a declaration; elements in spec order; None omitted."""
        return self._codec.to_xml(record)

    def from_xml(self, root: etree._Element) -> dict[str, Any]:
        """A typed record from a (validated) root element; missing optionals are None."""
        return self._codec.from_xml(root)

    def to_avro(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.avro_schema, record)
        return buf.getvalue()

    def from_avro(self, data: bytes) -> dict[str, Any]:
        record: Any = fastavro.schemaless_reader(io.BytesIO(data), self.avro_schema, None)
        if not isinstance(record, dict):
            raise ValueError(f"{self.kind} Avro body did not decode to a record")
        return record

    def check_facets(self, record: dict[str, Any]) -> list[Violation]:
        """(path, rule, expected) for each pattern/length/range violation (see bus.catalog.facets)."""
        return self._facets.check(record)
