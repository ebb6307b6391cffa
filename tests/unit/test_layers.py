"""The house keeps its shape: no import circles in bus/ and adapters/, adapters depend only on the
bus's ports and kernel, and only the assembly (bus.app, the CLI, the demo) knows the adapters.

Every import statement counts: at module level, inside functions, and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: what an adapter may import from the bus: the contracts and what they are made of
#: (bus.brokers.amqp: the AMQP intake connects, declares its queue and maps errors as the broker does;
#: bus.groupcommit: the HTTP sink joins concurrent deliveries into one batch request with it;
#: bus.heap: the simulators' process sets its garbage collector as a bus process does)
ADAPTERS_MAY_USE = ("bus.ports", "bus.errors", "bus.envelope", "bus.validation", "bus.catalog", "bus.logs",
                    "bus.masking", "bus.paths", "bus.topology", "bus.brokers.amqp",  # topology: queue names
                    "bus.groupcommit", "bus.ingests",  # ingests: bulk-file progress records (plain data)
                    "bus.heap")
#: the modules that assemble the bus from its parts, and so may know the adapters (the conformance
#: kits, like the demo, drive a vendor's system with the sinks' own requests and the simulators)
ASSEMBLY = ("bus.app", "bus.cli", "bus.demo", "bus.conformance")


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("bus", "adapters"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, name: str) -> set[str]:
    names: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {resolve(i) for i in _imports(path, name)}
        graph[name] = {t for t in targets if t is not None and t != name and not name.startswith(t + ".")}
    return graph


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_there_is_no_import_circle_in_bus_or_adapters() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert circles == []


def test_adapters_depend_only_on_the_ports_and_the_kernel_of_the_bus() -> None:
    wrong = sorted((name, target) for name, targets in _graph().items() if name.startswith("adapters")
                   for target in targets if target.startswith("bus") and not _within(target, ADAPTERS_MAY_USE))
    assert wrong == []


def test_only_the_assembly_knows_the_adapters() -> None:
    wrong = sorted((name, target) for name, targets in _graph().items() if name.startswith("bus")
                   and not _within(name, ASSEMBLY) for target in targets if target.startswith("adapters"))
    assert wrong == []


def test_the_stages_know_no_audit_store_and_no_settings() -> None:
    """Audit, counters and logs reach the stages only as hooks (bus.stages.hooks)."""
    wrong = sorted((name, target) for name, targets in _graph().items() if name.startswith("bus.stages")
                   for target in targets if _within(target, ("bus.audit", "bus.settings", "bus.app")))
    assert wrong == []


def test_the_check_sees_a_circle_when_there_is_one(tmp_path: Path) -> None:
    """The walker itself: a relative import resolves to the module it names."""
    (tmp_path / "a.py").write_text("from .b import x\n", encoding="utf-8")
    assert "pkg.b" in _imports(tmp_path / "a.py", "pkg.a")
