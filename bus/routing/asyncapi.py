"""Export the routes as an AsyncAPI 2.6 document (`renkei routes asyncapi`).

One channel per destination queue the bus publishes to (named by bus.topology:
`renkei.dest.<destination>`; with tenancy each configured destination of a route's system,
`renkei.dest.zei-131016`), carrying the target kinds of the routes that address it. Payloads
are the kinds' Avro schemas (inlined from the catalog's `.avsc`; a `$ref` to the file when it
has not been generated yet). The envelope travels as AMQP headers and is described once.
Each channel lists its routes under `x-renkei-routes` (condition, projection, legal basis).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bus.catalog import KindSchema
from bus.routing.model import Route
from bus.routing.router import RouteTable
from bus.topology import DESTINATION_PREFIX, route_queues

if TYPE_CHECKING:
    from bus.tenancy import Tenancy

__all__ = ["asyncapi_document"]

_ENVELOPE_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": [
        "message_id", "kind", "schema_version", "content_type", "municipality", "subject", "sequence",
    ],
    "properties": {
        "message_id": {"type": "string", "description": "derived from (municipality, 宛名番号, 履歴番号)"},
        "kind": {"type": "string", "description": "the message kind, e.g. kokuho.jumin"},
        "schema_version": {"type": "integer"},
        "content_type": {"type": "string", "enum": ["application/xml", "application/avro"]},
        "municipality": {"type": "string", "pattern": "^[0-9]{6}$", "description": "地方公共団体コード"},
        "source": {"type": "string"},
        "subject": {"type": "string", "description": "keyed HMAC pseudonym of the 宛名番号"},
        "sequence": {"type": "integer", "description": "履歴番号, the per-resident ordering key"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "correlation_id": {"type": "string"},
        "destination": {"type": "string"},
        "route": {"type": "string", "description": "the route that addressed the message"},
        "legal_basis": {"type": "string", "description": "the route's 番号法 basis for 個人番号"},
    },
}


def _message_name(ks: KindSchema) -> str:
    return f"{ks.kind}.v{ks.version}"


def _message(ks: KindSchema) -> dict[str, Any]:
    payload: Any
    try:
        payload = json.loads(ks.avsc_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        payload = {"$ref": f"schemas/{ks.kind}/{ks.version}/{ks.kind}.avsc"}
    return {
        "name": _message_name(ks),
        "title": f"{ks.kind} v{ks.version} {ks.label_ja}".strip(),
        "contentType": "application/avro",
        "schemaFormat": "application/vnd.apache.avro+json;version=1.9.0",
        "headers": {"$ref": "#/components/schemas/Envelope"},
        "payload": payload,
        "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": "0.2.0"}},
    }


def asyncapi_document(
    table: RouteTable, *, title: str = "renkei routes", version: str = "1.0.0", tenancy: Tenancy | None = None
) -> dict[str, Any]:
    """The AsyncAPI 2.6.0 document of `table` (a plain dict, ready for YAML or JSON); with
    `tenancy` (the bus's configured destinations) the channels are the queues it publishes to."""
    messages: dict[str, Any] = {}
    by_queue: dict[str, list[Route]] = {}
    for destination, routes in table.by_destination().items():
        for queue in route_queues(destination, tenancy):
            by_queue.setdefault(queue, []).extend(routes)
    channels: dict[str, Any] = {}
    for queue, routes in sorted(by_queue.items()):
        refs: list[dict[str, str]] = []
        for route in routes:
            ks = table.catalog.get(route.projection.kind)
            name = _message_name(ks)
            if name not in messages:
                messages[name] = _message(ks)
            ref = {"$ref": f"#/components/messages/{name}"}
            if ref not in refs:
                refs.append(ref)
        destination = queue.removeprefix(DESTINATION_PREFIX)
        channels[queue] = {
            "description": f"Messages for the {destination} system, one per matching route.",
            "subscribe": {
                "operationId": f"receive_{destination.replace('-', '_')}",
                "summary": f"{destination} receives its projections of resident changes",
                "message": refs[0] if len(refs) == 1 else {"oneOf": refs},
            },
            "bindings": {"amqp": {"is": "queue", "queue": {"name": queue, "durable": True, "exclusive": False,
                                                           "autoDelete": False}, "bindingVersion": "0.2.0"}},
            "x-renkei-routes": [
                {
                    "name": r.name,
                    "takes": r.takes,
                    "when": r.when,
                    "projection": r.projection.kind + (f" ({r.projection.function})" if r.projection.function
                                                       else ""),
                    "legal_basis": r.legal_basis,
                    "municipalities": sorted(r.municipalities) if r.municipalities else None,
                    "description": r.description,
                }
                for r in routes
            ],
        }
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Destination queues of the renkei bus and what each receives (generated from "
            "routes/*.yaml by `renkei routes asyncapi`).",
        },
        "defaultContentType": "application/avro",
        "channels": channels,
        "components": {"messages": messages, "schemas": {"Envelope": _ENVELOPE_HEADERS}},
    }
