"""The wheel ships the data the bus needs: every file of the schema catalog and every route
file is named by a `[tool.setuptools.data-files]` entry of pyproject.toml, under the
directory bus/paths.py looks in (`<prefix>/share/renkei/...`)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_schema_and_route_file_is_shipped_where_bus_paths_finds_it() -> None:
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "data-files"]
    shipped: dict[str, str] = {}
    for target, patterns in data_files.items():
        for pattern in patterns:
            for path in ROOT.glob(pattern):
                if path.is_file():
                    shipped[path.relative_to(ROOT).as_posix()] = target
    wanted = [p for folder in ("schemas", "routes") for p in (ROOT / folder).rglob("*") if p.is_file()]
    assert wanted
    missing = sorted(p.relative_to(ROOT).as_posix() for p in wanted if p.relative_to(ROOT).as_posix() not in shipped)
    assert missing == [], "run python scripts/data_files.py to list them in pyproject.toml"
    for relative, target in shipped.items():
        assert target == f"share/renkei/{Path(relative).parent.as_posix()}", relative
        assert fnmatch.fnmatch(relative, "*") and not relative.endswith(".pyc")


def test_the_data_files_table_is_what_scripts_data_files_writes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("data_files", ROOT / "scripts" / "data_files.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert module.rewritten(current, module.table()) == current, "run python scripts/data_files.py"


def test_the_consoles_templates_and_static_files_are_package_data() -> None:
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["bus.console"]
    folder = ROOT / "bus" / "console"
    files = [p.relative_to(folder).as_posix() for sub in ("templates", "static") for p in (folder / sub).rglob("*")
             if p.is_file()]
    assert any(f.endswith(".html") for f in files) and any(f.endswith(".css") for f in files)
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f, pattern) for pattern in package_data)]
    assert unshipped == [], "add them to [tool.setuptools.package-data] bus.console in pyproject.toml"
