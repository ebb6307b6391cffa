"""Decode a body the bus itself validated (at intake, or a projection it made) into a record.

Still through the hardened parser: a queue is not a trust boundary. A module of its own (not
imported by `bus.catalog`) because the parser lives with validation, which needs the catalog.
"""

from __future__ import annotations

from typing import Any

from bus.catalog.catalog import Catalog
from bus.catalog.kind import KindSchema
from bus.envelope import Envelope
from bus.validation.safe_xml import parse_xml

__all__ = ["decode"]


def decode(body: bytes, envelope: Envelope, catalog: Catalog) -> tuple[KindSchema, dict[str, Any]]:
    """The kind and record of `body`, whose envelope names its kind, version and content type."""
    ks = catalog.get(envelope.kind, envelope.schema_version)
    if envelope.content_type == "application/avro":
        return ks, ks.from_avro(body)
    return ks, ks.from_xml(parse_xml(body))
