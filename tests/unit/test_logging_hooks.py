"""The stages' per-message debug lines (accepted, delivered) cost nothing when debug is off:
structlog's lazy proxy built a bound logger on every call, dropped line or not (issue 10)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

import bus.logs
from bus.logs import configure_logging, debug_enabled
from bus.ports import Receipt
from bus.stages.hooks import LoggingHooks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import audit_cases as cases  # the contract suite's sample envelopes


class Untouchable:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the logger was used ({name}) for a line its level drops")


@pytest.fixture
def restored() -> Iterator[None]:
    saved, level = structlog.get_config(), bus.logs._level
    yield
    structlog.configure(**saved)
    bus.logs._level = level


def test_with_debug_off_the_per_message_lines_never_reach_the_logger(restored: None) -> None:
    configure_logging("json", "info", stream=io.StringIO())
    assert not debug_enabled()
    hooks = LoggingHooks()
    hooks._log = Untouchable()
    envelope = cases.envelope().for_destination("zei", "zei.jumin", 1, "zei-all", None)
    hooks.accepted(cases.envelope())
    hooks.delivered(envelope, Receipt("zei", envelope.idempotency_key, "applied"))


def test_with_debug_on_they_are_written_with_ids_only(restored: None) -> None:
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    assert debug_enabled()
    hooks = LoggingHooks()
    envelope = cases.envelope().for_destination("zei", "zei.jumin", 1, "zei-all", None)
    hooks.accepted(cases.envelope())
    hooks.delivered(envelope, Receipt("zei", envelope.idempotency_key, "applied"))
    lines = stream.getvalue().splitlines()
    assert [('"event": "accepted"' in lines[0]), ('"event": "delivered"' in lines[1])] == [True, True]
    assert envelope.message_id in lines[1] and cases.ADDRESS_NUMBER not in stream.getvalue()


def test_unconfigured_logging_writes_every_level(restored: None) -> None:
    bus.logs._level = None
    assert debug_enabled()
