"""Load and check the route files (`routes/*.yaml`); every problem cites file:line.

A route file is a mapping with one key, `routes`, a list of routes (docs/routes.md):

    routes:
      - name: kaigo-age40
        destination: kaigo
        takes: jumin.idou
        when: age >= 40
        projection: kaigo.jumin            # or {kind: ..., function: ..., params: {...}}
        legal_basis: 番号法 第9条第1項 別表第一 第68項 (介護保険)
        description: 介護保険 ← persons aged 40 or over on 異動日

Loading reads the YAML node tree (keeping line marks), checks every file completely and
collects every error as a `ConfigError(where="routes/kaigo.yaml:4")`; `load_routes` raises
them together as `RouteErrors` so an integrator fixes all of them in one round.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from bus.catalog import Catalog, KindSchema
from bus.catalog.codelists import CodeLists
from bus.errors import ConfigError, RouteErrors
from bus.routing.conditions import compile_condition, suggest
from bus.routing.model import ProjectionSpec, Route
from bus.routing.projection import PERSONAL_NUMBER, PROJECTIONS, missing_fields
from bus.validation.checkdigits import is_valid_municipality_code

__all__ = ["ROUTE_KEYS", "SOURCE_KINDS", "RouteErrors", "check_routes", "codelists_of", "load_routes"]

#: route key → required
ROUTE_KEYS: Mapping[str, bool] = {
    "name": True,
    "destination": True,
    "takes": True,
    "when": True,
    "projection": True,
    "legal_basis": False,
    "description": False,
    "municipalities": False,
}
PROJECTION_KEYS: Mapping[str, bool] = {"kind": True, "function": False, "params": False}
FILE_KEYS = ("routes",)
#: the kinds a route may take: a resident change, a ぴったりサービス application (its context:
#: `procedure_code` and `municipality`, bus.routing.context.application_context), and a 支援措置
#: without a 異動 (its context: `municipality`, bus.routing.context.support_measure_context)
SOURCE_KINDS = ("jumin.idou", "pittari.shinsei", "jumin.shien")

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_DESTINATION = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def load_routes(directory: Path | str | None = None, catalog: Catalog | None = None,
                codelists: CodeLists | None = None) -> list[Route]:
    """Load every `*.yaml` route file of `directory` (default bus.paths.routes_dir()).

    `catalog` is a bus.catalog.Catalog (loaded when not given). Raises `RouteErrors`.
    """
    routes, errors = check_routes(directory, catalog, codelists)
    if errors:
        raise RouteErrors(errors)
    return routes


def check_routes(directory: Path | str | None = None, catalog: Catalog | None = None,
                 codelists: CodeLists | None = None) -> tuple[list[Route], list[ConfigError]]:
    """Like `load_routes`, but return (the routes that are fine, every error) instead of raising."""
    if directory is None:
        from bus.paths import routes_dir

        directory = routes_dir()
    directory = Path(directory)
    if catalog is None:
        catalog = Catalog.load()
    codelists = codelists or codelists_of(catalog)
    where = _display(directory)
    if not directory.is_dir():
        return [], [ConfigError("the routes directory does not exist", where=where)]
    files = sorted(directory.glob("*.yaml"))
    errors = [ConfigError("only *.yaml files are loaded: rename it to .yaml", where=_display(p))
              for p in sorted(directory.glob("*.yml"))]
    if not files:
        errors.append(ConfigError("no route files (*.yaml) in this directory", where=where))
    domains = {n: codelists.symbols(n) for n in codelists.names()}
    for base in ("ChangeReason", "PensionCategory"):  # a v1 or a v2 message may match the same route
        domains[base] = tuple(dict.fromkeys(s for n in codelists.names() if n.startswith(base)
                                            for s in codelists.symbols(n)))
    checker = _Checker(catalog, domains)
    for path in files:
        checker.check_file(path)
    errors.extend(checker.errors)
    return checker.routes, errors


def codelists_of(catalog: Catalog) -> CodeLists:
    """The code lists a catalog was loaded with."""
    return catalog.codelists


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _line_of_error(error: ConfigError) -> int:
    tail = (error.where or "").rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Checker:
    """Checks route files one after another; collects routes and errors."""

    def __init__(self, catalog: Catalog, domains: Mapping[str, Iterable[str]]) -> None:
        self.catalog = catalog
        self.domains = domains
        self.routes: list[Route] = []
        self.errors: list[ConfigError] = []
        self.names: dict[str, str] = {}  # route name → where first defined
        self.file = ""

    def error(self, message: str, node: yaml.Node | int) -> None:
        line = node if isinstance(node, int) else _line(node)
        self.errors.append(ConfigError(message, where=f"{self.file}:{line}"))

    def check_file(self, path: Path) -> None:
        self.file = _display(path)
        first = len(self.errors)
        self._check_file(path)
        self.errors[first:] = sorted(self.errors[first:], key=_line_of_error)

    def _check_file(self, path: Path) -> None:
        try:
            root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            hint = " (indent with spaces: YAML does not allow tabs)" if "\\t" in repr(exc.problem) else ""
            problem = f"{exc.context}: {exc.problem}" if exc.context else str(exc.problem)
            self.error(f"YAML syntax error: {problem}{hint}", mark.line + 1 if mark else 1)
            return
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            self.errors.append(ConfigError(f"cannot read the route file: {exc}", where=self.file))
            return
        if not isinstance(root, yaml.MappingNode):
            self.error("a route file is a mapping with a 'routes' list", root if root is not None else 1)
            return
        body = self.mapping(root, {"routes": True}, "route file")
        routes = body.get("routes")
        if routes is None:
            return
        if not isinstance(routes, yaml.SequenceNode):
            self.error("'routes' must be a list of routes (each item starts with '- ')", routes)
            return
        for item in routes.value:
            if isinstance(item, yaml.MappingNode):
                self.check_route(item)
            else:
                self.error("each route must be a mapping of keys (name, destination, ...)", item)

    def mapping(self, node: yaml.MappingNode, keys: Mapping[str, bool], what: str) -> dict[str, yaml.Node]:
        """The key → value nodes of a mapping; unknown, duplicate and missing keys are errors."""
        found: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.error(f"{what}: keys must be plain names", key_node)
            elif key in found:
                self.error(f"{what}: duplicate key {key!r} (first at line {_line(found[key])})", key_node)
            elif key not in keys:
                self.error(f"{what}: unknown key {key!r}{suggest(key, keys)} (known: {', '.join(keys)})",
                           key_node)
            else:
                found[key] = value_node
        for key, required in keys.items():
            if required and key not in found:
                self.error(f"{what}: missing required key {key!r}", node)
        return found

    def text(self, nodes: Mapping[str, yaml.Node], key: str, what: str) -> str | None:
        node = nodes.get(key)
        if node is None:
            return None
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.error(f"{what}: {key} must be text", node)
            return None
        value = str(node.value).strip()
        if not value:
            self.error(f"{what}: {key} must not be empty", node)
            return None
        return value

    def check_route(self, node: yaml.MappingNode) -> None:
        start, before = _line(node), len(self.errors)
        nodes = self.mapping(node, ROUTE_KEYS, "route")
        name = self.text(nodes, "name", "route")
        what = f"route {name!r}" if name else "route"
        if name is not None:
            if not _NAME.fullmatch(name):
                self.error(f"{what}: name must be lower-case letters, digits, '-', '_' or '.'", nodes["name"])
            elif name in self.names:
                self.error(f"{what}: duplicate route name (first defined at {self.names[name]})",
                           nodes["name"])
            else:
                self.names[name] = f"{self.file}:{start}"
        destination = self.text(nodes, "destination", what)
        if destination is not None and not _DESTINATION.fullmatch(destination):
            self.error(f"{what}: destination {destination!r} must be a system id such as 'kokuho' "
                       "(lower-case letters, digits, '-' or '_', at most 32)", nodes["destination"])
        takes = self.check_takes(nodes, what)
        legal_basis = self.check_legal_basis(nodes, what)
        program, when = self.check_when(nodes, what)
        projection = self.check_projection(nodes, what, takes, legal_basis)
        municipalities = self.check_municipalities(nodes, what)
        description = self.text(nodes, "description", what) if "description" in nodes else ""
        if len(self.errors) > before or program is None:
            return
        if name and destination and takes and when and projection:
            self.routes.append(Route(
                name=name, destination=destination, takes=takes, when=when, projection=projection,
                legal_basis=legal_basis, description=description or "", municipalities=municipalities,
                where=f"{self.file}:{start}", program=program,
            ))

    def kind(self, kind: str) -> KindSchema | None:
        try:
            return self.catalog.get(kind)
        except ConfigError:
            return None

    def kind_error(self, what: str, key: str, kind: str, node: yaml.Node) -> None:
        known = self.catalog.kinds()
        self.error(f"{what}: {key} {kind!r} is not a kind of the schema catalog{suggest(kind, known)}", node)

    def check_takes(self, nodes: Mapping[str, yaml.Node], what: str) -> str | None:
        takes = self.text(nodes, "takes", what)
        if takes is None:
            return None
        if self.kind(takes) is None:
            self.kind_error(what, "takes", takes, nodes["takes"])
            return None
        if takes not in SOURCE_KINDS:
            self.error(f"{what}: routes can take only {', '.join(SOURCE_KINDS)} "
                       "(conditions are evaluated on a resident change, an application or a 支援措置)", nodes["takes"])
            return None
        return takes

    def check_legal_basis(self, nodes: Mapping[str, yaml.Node], what: str) -> str | None:
        if "legal_basis" not in nodes:
            return None
        return self.text(nodes, "legal_basis", what)

    def check_when(self, nodes: Mapping[str, yaml.Node], what: str) -> tuple[Any, str | None]:
        node = nodes.get("when")
        when = self.text(nodes, "when", what)
        if node is None or when is None:
            return None, None
        program, problems = compile_condition(when, self.domains)
        first = _line(node) + (1 if isinstance(node, yaml.ScalarNode) and node.style == "|" else 0)
        literal = isinstance(node, yaml.ScalarNode) and node.style == "|"
        for problem in problems:
            line = first + (problem.line - 1 if literal and problem.line else 0)
            self.error(f"{what}: {problem.message}", line)
        return program, when

    def check_projection(self, nodes: Mapping[str, yaml.Node], what: str, takes: str | None,
                         legal_basis: str | None) -> ProjectionSpec | None:
        node = nodes.get("projection")
        if node is None:
            return None
        function: str | None = None
        params: dict[str, Any] = {}
        if isinstance(node, yaml.ScalarNode):
            kind_node: yaml.Node = node
            kind = self.text(nodes, "projection", what)
        elif isinstance(node, yaml.MappingNode):
            parts = self.mapping(node, PROJECTION_KEYS, f"{what} projection")
            if "kind" not in parts:
                return None
            kind_node, kind = parts["kind"], self.text(parts, "kind", f"{what} projection")
            function = self.text(parts, "function", f"{what} projection") if "function" in parts else None
            params = self.check_params(parts, what, function)
        else:
            self.error(f"{what}: projection must be a kind (kokuho.jumin) or a mapping with kind", node)
            return None
        if kind is None:
            return None
        target = self.kind(kind)
        if target is None:
            self.kind_error(what, "projection kind", kind, kind_node)
            return None
        if function is not None:
            named = PROJECTIONS.get(function)
            if named is None:
                self.error(f"{what}: unknown projection function {function!r}"
                           f"{suggest(function, PROJECTIONS)} (known: {', '.join(PROJECTIONS)})", node)
                return None
            if named.target_kind != kind:
                self.error(f"{what}: projection function {function!r} produces {named.target_kind}, "
                           f"not {kind}", kind_node)
                return None
            for problem in named.check_params(params):
                self.error(f"{what}: {problem}", node)
        elif takes is not None and (source := self.kind(takes)) is not None:
            missing = missing_fields(target.fields, source.fields)
            if missing:
                self.error(f"{what}: {kind} requires fields {takes} does not have ({', '.join(missing)}); "
                           "such a projection needs a function", kind_node)
        required_pn = any(f.name == PERSONAL_NUMBER and not f.optional for f in target.fields)
        never = PROJECTIONS[function].never if function else frozenset()
        if required_pn and legal_basis is None and PERSONAL_NUMBER not in never:
            self.error(f"{what}: {kind} requires personal_number (個人番号) but the route declares no "
                       "legal_basis; add the 番号法 basis or project to a kind without it", kind_node)
        return ProjectionSpec(kind, function, MappingProxyType(params))

    def check_params(self, parts: Mapping[str, yaml.Node], what: str, function: str | None) -> dict[str, Any]:
        node = parts.get("params")
        if node is None:
            return {}
        if function is None:
            self.error(f"{what}: projection params need a projection function", node)
        if not isinstance(node, yaml.MappingNode):
            self.error(f"{what}: projection params must be a mapping", node)
            return {}
        try:
            value = yaml.constructor.SafeConstructor().construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.error(f"{what}: projection params cannot be read: {exc}", node)
            return {}
        return dict(value) if isinstance(value, dict) else {}

    def check_municipalities(self, nodes: Mapping[str, yaml.Node], what: str) -> frozenset[str] | None:
        node = nodes.get("municipalities")
        if node is None:
            return None
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.error(f"{what}: municipalities must be a non-empty list of 6-digit codes", node)
            return None
        codes: set[str] = set()
        for item in node.value:
            code = str(item.value) if isinstance(item, yaml.ScalarNode) else ""
            if not is_valid_municipality_code(code):
                self.error(f"{what}: {code!r} is not a 地方公共団体コード "
                           "(6 digits with a valid check digit)", item)
            codes.add(code)
        return frozenset(codes)
