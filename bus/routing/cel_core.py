"""The CEL engine without its command line: ~3 MB per process instead of ~30.

The `common-expression-language` package's ``cel/__init__.py`` imports its own command line
(``cel.cli``: prompt_toolkit, rich, pygments, typer — about 450 modules and 26 MB of RSS) before
the Rust extension ``cel.cel`` that compiles and runs expressions, which is all renkei uses
(`compile`, `Context`). Every bus process paid that: the router and deliverer processes of
`renkei demo`, `renkei run --role …` and `renkei ingest` carried it three times over
(bench/README.md, "Less memory per bus process").

`engine()` loads the extension alone, as the package would (``cel.cel``, registered in
``sys.modules`` so that a later ``import cel`` finds it there and does not initialise it twice).
The public path, ``import cel``, is the fallback: taken when the extension is not where the
package keeps it, when loading it fails, or when ``RENKEI_CEL_PACKAGE=1`` asks for it
(tests/unit/test_cel_core.py runs the conditions both ways).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["PUBLIC_PATH_ENV", "engine"]

#: set to 1 to import the whole `cel` package (its command line included), the public path
PUBLIC_PATH_ENV = "RENKEI_CEL_PACKAGE"
_EXTENSION = "cel.cel"


def engine() -> ModuleType:
    """The module with `compile` and `Context`: the extension alone, else the `cel` package."""
    if os.environ.get(PUBLIC_PATH_ENV, "").strip() == "1" or "cel" in sys.modules:
        return _package()
    loaded = sys.modules.get(_EXTENSION)
    if loaded is not None:
        return loaded
    try:
        return _extension()
    except (ImportError, OSError):
        return _package()


def _package() -> ModuleType:
    import cel

    return cel


def _extension() -> ModuleType:
    spec = importlib.util.find_spec("cel")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the cel package is not installed")
    path = next((candidate for folder in spec.submodule_search_locations
                 for suffix in importlib.machinery.EXTENSION_SUFFIXES
                 if (candidate := Path(folder) / f"cel{suffix}").is_file()), None)
    extension = path and importlib.util.spec_from_file_location(_EXTENSION, path)
    if not extension or extension.loader is None:
        raise ImportError("the cel package has no compiled extension beside its __init__")
    module = importlib.util.module_from_spec(extension)
    extension.loader.exec_module(module)
    sys.modules[_EXTENSION] = module
    return module
