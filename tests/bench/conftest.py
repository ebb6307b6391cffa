"""bench/ is a folder of scripts beside the packages, not an installed package: put the
repository root on the import path so the tests can run its code."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
