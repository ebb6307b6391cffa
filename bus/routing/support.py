"""Which destinations cannot carry the 支援措置 flag, and whether jumin.shien reaches them.

The v2 projection kinds carry `support_measure` (支援措置（抑止）; 住民記録 standard 1.1.16, 3.1,
3.2, 7.2.3). A destination that takes resident changes on a version of its kind without that
field (the released v1, the default until a destination pins v2 in `[destinations.<name>]
schema_version`) cannot learn of a 支援措置 from the changes: only the jumin.shien message
(routes/shien.yaml) tells it. `support_gaps` names each such destination, and the route that
sends it jumin.shien — or none, when no route does: then it never learns of the 抑止. `renkei
routes check` prints them and the bus logs them as a warning at start (docs/domain.md,
section 2, 支援措置): visible, not silent.

    for gap in support_gaps(table.routes, catalog, pins={"zei": 2}):
        print(gap.text())
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bus.catalog import Catalog
from bus.routing.model import Route

__all__ = ["SUPPORT_FIELD", "SUPPORT_KIND", "SupportGap", "support_gaps"]

#: the item of the resident kinds (v2) that carries the 支援措置
SUPPORT_FIELD = "support_measure"
#: the kind of a 支援措置 set, extended or released without a 異動
SUPPORT_KIND = "jumin.shien"
_RESIDENT_CHANGE = "jumin.idou"


@dataclass(frozen=True, slots=True)
class SupportGap:
    """A destination that takes resident changes on a kind version without `support_measure`."""

    destination: str
    kind: str  # the target kind of its resident route, e.g. zei.jumin
    version: int  # the version it takes (pinned, or the kind's default)
    route: str  # the resident route
    support_route: str | None  # the route that sends it jumin.shien; None: no route does

    def text(self) -> str:
        head = f"{self.destination}: takes resident changes as {self.kind} v{self.version} (route {self.route}), " \
               f"which has no {SUPPORT_FIELD}"
        if self.support_route is None:
            return f"{head}; NO route sends it {SUPPORT_KIND}: it will not learn of 支援措置 (抑止)"
        return f"{head}; it learns of 支援措置 only from {SUPPORT_KIND} (route {self.support_route})"


def support_gaps(routes: Iterable[Route], catalog: Catalog, pins: Mapping[str, int] | None = None,
                 systems: Mapping[str, str] | None = None) -> list[SupportGap]:
    """Each destination a jumin.idou route reaches on a version of a kind that has
    `support_measure` in some version but not in the one the destination takes.

    `pins`: configured destination → the version it pins; `systems`: configured destination →
    the route destination it stands for (`[destinations.<name>] system`), default itself. A
    route destination no configured one stands for takes the kind's default version."""
    pins, systems = dict(pins or {}), dict(systems or {})
    routes = list(routes)
    support_route: dict[str, str] = {}
    for route in sorted(routes, key=lambda r: r.name):
        if route.takes == SUPPORT_KIND:
            support_route.setdefault(route.destination, route.name)
    gaps: list[SupportGap] = []
    for route in sorted(routes, key=lambda r: (r.destination, r.name)):
        kind = route.projection.kind
        if route.takes != _RESIDENT_CHANGE or not any(_carries(catalog, kind, v) for v in catalog.versions(kind)):
            continue
        names = [n for n in {*pins, *systems} if (systems.get(n) or n) == route.destination] or [route.destination]
        for name in sorted(names):
            version = pins.get(name) or catalog.get(kind).version
            if not _carries(catalog, kind, version):
                gaps.append(SupportGap(name, kind, version, route.name, support_route.get(route.destination)))
    return gaps


def _carries(catalog: Catalog, kind: str, version: int) -> bool:
    return any(f.name == SUPPORT_FIELD for f in catalog.get(kind, version).fields)
