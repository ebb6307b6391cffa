"""Simulators of the receiving systems, the 中間サーバー and the マイナポータル.

Realistic HTTP services that validate what they receive against the expected kind, keep
what they accepted (in memory, and with a store directory in its log `received.jsonl`, one
line per message with its body), count effects per Idempotency-Key, and can be told to be
slow, fail, reject or go away.

- `create_app(system, catalog=..., validate=...)`: the starlette app of one system;
- `SimulatorCluster`: all of them in-process, one loopback port each (for tests, the demo);
- ``renkei simulate SYSTEM --port P``: one of them as a standalone server.
"""

from adapters.server import EmbeddedServer
from adapters.simulators.app import create_app, has_personal_number, personal_number_valid
from adapters.simulators.cluster import SimulatorCluster
from adapters.simulators.state import SYSTEMS, Behaviour, ReceivedMessage, SimulatorState, SystemInfo, wire_togo

__all__ = [
    "SYSTEMS",
    "Behaviour",
    "EmbeddedServer",
    "ReceivedMessage",
    "SimulatorCluster",
    "SimulatorState",
    "SystemInfo",
    "create_app",
    "has_personal_number",
    "personal_number_valid",
    "wire_togo",
]
