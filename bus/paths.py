"""Where renkei's data directories are: the schema catalog (`schemas/`) and routes (`routes/`).

Both are data shipped beside the packages. Lookup order for each:

1. the environment: ``RENKEI_SCHEMAS_DIR`` / ``RENKEI_ROUTES_DIR``;
2. a source or editable checkout: ``schemas/`` / ``routes/`` next to the ``bus`` package;
3. an installed wheel: ``<sys.prefix>/share/renkei/schemas`` / ``.../routes``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["routes_dir", "schemas_dir"]

_CHECKOUT = Path(__file__).resolve().parent.parent


def schemas_dir() -> Path:
    """The schema catalog root (holds ``codelists.yaml`` and ``<kind>/<version>/``)."""
    return _data_dir("schemas", "RENKEI_SCHEMAS_DIR")


def routes_dir() -> Path:
    """The directory of the route files (``*.yaml``)."""
    return _data_dir("routes", "RENKEI_ROUTES_DIR")


def _data_dir(name: str, env: str) -> Path:
    override = os.environ.get(env)
    if override:
        return Path(override).expanduser()
    local = _CHECKOUT / name
    if local.is_dir():
        return local
    return Path(sys.prefix) / "share" / "renkei" / name
