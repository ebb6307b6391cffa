"""The web console (DESIGN §7, issue 14): overview, dead letters, a message's life, the audit
trail, alerts; accounts and roles; /metrics, /healthz, /readyz.

    from bus.console import Console, console_options
    console = Console(settings, console_options(settings), serve=EmbeddedServer)  # adapters.server
    await console.start(); print(console.url); ...; await console.stop()

The assembly hands it its HTTP server (the console knows no adapter): `renkei run` through
bus.cli.console.start_with_bus (off unless `[console] enabled = true`), `renkei console`,
`renkei demo --console` (bus.cli.demo_console).
"""

from __future__ import annotations

from bus.console.accounts import ROLES, Account, Accounts
from bus.console.alerts import Alerts, Condition
from bus.console.config import ConsoleOptions, console_options
from bus.console.web import Console, DemoControls

__all__ = [
    "ROLES",
    "Account",
    "Accounts",
    "Alerts",
    "Condition",
    "Console",
    "ConsoleOptions",
    "DemoControls",
    "console_options",
]
