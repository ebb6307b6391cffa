"""Routing (DESIGN §4): which destinations a resident change reaches, and what each receives.

Routes are data (`routes/*.yaml`, docs/routes.md): a CEL condition over a small context
(bus.routing.context, no personal data), a destination, and a projection to the target
kind (bus.routing.projection, data minimisation; the 個人番号 only with a legal basis).

    table = RouteTable.load(routes_dir(), catalog)       # errors: RouteErrors, each file:line
    matches = table.route(record, municipality, message_id=envelope.message_id)
"""

from bus.errors import RouteErrors
from bus.routing.context import CONTEXT_VARIABLES, age_on, build_context
from bus.routing.loader import check_routes, load_routes
from bus.routing.model import NamedProjection, ProjectionInput, ProjectionSpec, Route, RouteMatch
from bus.routing.projection import PROJECTIONS, Projector, register_projection
from bus.routing.router import RouteTable, Verdict

__all__ = [
    "CONTEXT_VARIABLES",
    "PROJECTIONS",
    "NamedProjection",
    "ProjectionInput",
    "ProjectionSpec",
    "Projector",
    "Route",
    "RouteErrors",
    "RouteMatch",
    "RouteTable",
    "Verdict",
    "age_on",
    "build_context",
    "check_routes",
    "load_routes",
    "register_projection",
]
