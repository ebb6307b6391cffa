"""The project stage: a matched route's projection, serialised once and proven valid.

A projection is the subset of a change one destination may receive (data minimisation),
in the route's target kind. Its XML is validated against the target kind's XSD before it
leaves the bus: an invalid projection is a bug of a projection function, and the stage
that made it crashes (and after `poison_after` crashes the change is dead-lettered, D300),
rather than sending a receiving system something its schema refuses.
"""

from __future__ import annotations

from lxml import etree

from bus.routing.model import RouteMatch

__all__ = ["project"]


def project(match: RouteMatch) -> bytes:
    """The XML of `match`'s projection, valid against its target kind (AssertionError if not)."""
    target = match.target
    xml = target.to_xml(match.record)
    target.xml_schema.assertValid(etree.fromstring(xml))  # our own serialisation, not input
    return xml
