"""The web console (DESIGN §7, issue 14): overview, dead letters, a message's life, the audit
trail, alerts; accounts and roles; /metrics, /healthz, /readyz.

    from bus.console import Console, console_options
    console = Console(settings, console_options(settings))
    await console.start(); print(console.url); ...; await console.stop()

`start_with_bus` is the hook `renkei run` calls (off unless `[console] enabled = true`).
"""

from __future__ import annotations

from bus.console.accounts import ROLES, Account, Accounts
from bus.console.alerts import Alerts, Condition
from bus.console.config import ConsoleOptions, console_options
from bus.console.hooks import start_with_bus
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
    "start_with_bus",
]
