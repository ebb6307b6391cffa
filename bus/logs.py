"""Logging: structlog, JSON in production, readable on a terminal, personal data masked.

`mask_personal` is the safety net: the code logs envelopes (pseudonyms), never records,
but any event key naming a personal field is masked, and long digit runs (個人番号,
宛名番号, 住民票コード) in any string value are masked too.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from bus.masking import OUTSIDE_THE_CATALOG, mask_value, personal_fields

__all__ = ["configure_logging", "debug_enabled", "get_logger", "mask_personal", "scrub"]

#: the level `configure_logging` set (None: not configured, structlog's defaults write every level)
_level: int | None = None


def debug_enabled() -> bool:
    """Whether debug lines are written. A per-message debug line (accepted, delivered: ~6 per
    change) checks this first: a module's logger is structlog's lazy proxy, which builds a bound
    logger on every call even when the level drops the line (~2.5 µs each, issue 10)."""
    return _level is None or _level <= logging.DEBUG

_DIGIT_RUN = re.compile(r"(?<![0-9a-f])\d{8,15}(?![0-9a-f])")


def _personal() -> frozenset[str]:
    """The catalog's personal fields; without a catalog (a misconfigured RENKEI_SCHEMAS_DIR) a log
    line must still be written: then the names outside the catalog, and every digit run masked."""
    try:
        return personal_fields()
    except Exception:
        return OUTSIDE_THE_CATALOG


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _DIGIT_RUN.sub(lambda m: mask_value(m.group()), value)
    if isinstance(value, dict):
        personal = _personal()
        return {k: mask_value(v) if k in personal else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def scrub(text: str) -> str:
    """`text` with long digit runs (個人番号, 宛名番号, 住民票コード) masked: for free text that
    is shown or stored, such as a receiver's error message."""
    result: str = _scrub(text)
    return result


def mask_personal(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask personal fields and long digit runs everywhere."""
    personal = _personal()
    for key, value in list(event_dict.items()):
        event_dict[key] = mask_value(value) if key in personal else _scrub(value)
    return event_dict


def configure_logging(fmt: str = "console", level: str = "info", stream: Any = None) -> None:
    """Configure structlog once for the process (CLI entry points call this)."""
    global _level
    _level = getattr(logging, level.upper(), logging.INFO)
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_personal,  # last before rendering: sees exception text too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
