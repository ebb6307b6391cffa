"""`renkei demo --console`: the console on the demo's running bus, with a demo account and
buttons to stop and start a simulated system and to send more changes.

A stopped system refuses connections; the demo's short retry policy (`DEMO_RETRY`) turns its
changes into dead letters within seconds, so the overview goes red and one alert opens;
started again and its letters replayed from the console, it goes green and the alert clears.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import signal
from collections.abc import Callable
from dataclasses import replace

from adapters.server import EmbeddedServer
from adapters.simulators import SimulatorCluster
from bus.app import Bus
from bus.console.accounts import Accounts
from bus.console.config import ConsoleOptions
from bus.console.web import Console
from bus.delivery.policy import RetryPolicy
from bus.demo import SOURCE, DemoOptions, FeedItem, demo_feed

__all__ = ["DEMO_ACCOUNT", "DEMO_RETRY", "DemoConsole", "demo_console_options"]

DEMO_ACCOUNT = "demo"
#: a stopped system's changes become dead letters in seconds (a real bus waits a day)
DEMO_RETRY = RetryPolicy(attempts=2, backoff=0.1, tiers=(1.0, 2.0), deadline=6.0)


def demo_console_options(port: int) -> ConsoleOptions:
    return ConsoleOptions(enabled=True, port=port, down_after=5.0, backlog_age=120.0, quiet_period=2.0,
                          sample_every=2.0, verify_every=30.0)


class _Controls:
    def __init__(self, bus: Bus, sims: SimulatorCluster, feed: list[FeedItem]) -> None:
        self.bus, self.sims, self.feed = bus, sims, feed
        self._rng = random.Random()

    def systems(self) -> dict[str, bool]:
        return {name: server.running for name, server in self.sims.servers.items()}

    async def take_down(self, system: str) -> None:
        await self.sims.take_down(system)

    async def bring_up(self, system: str) -> None:
        await self.sims.bring_up(system)

    async def send(self, changes: int) -> None:
        options = DemoOptions(changes=changes, seed=self._rng.randrange(1 << 30), invalid_rate=0.0,
                              duplicate_rate=0.0)
        for item in demo_feed(self.bus.catalog, options):
            answer = await self.bus.intake.submit(item.body, content_type="application/xml", source=SOURCE)
            if answer.status == "accepted":
                self.feed.append(item)  # the demo's final check expects it too


class DemoConsole:
    """`then` for bus.demo.run_demo: serve the console until `stop` is set (or SIGINT/SIGTERM)."""

    def __init__(self, options: ConsoleOptions, say: Callable[[str], None]) -> None:
        self.options = options
        self.say = say
        self.stop = asyncio.Event()
        self.console: Console | None = None
        self.password = secrets.token_urlsafe(9)

    async def __call__(self, bus: Bus, sims: SimulatorCluster, feed: list[FeedItem]) -> None:
        options = replace(self.options, users_file=bus.settings.bus.state_dir / "console-users.json")
        assert options.users_file is not None
        Accounts(options.users_file).add(DEMO_ACCOUNT, self.password, role="operator", municipalities=["*"])
        console = self.console = Console(bus.settings, options, serve=EmbeddedServer, broker=bus.broker,
                                         destinations=lambda: bus.destinations, demo=_Controls(bus, sims, feed))
        await console.start()
        loop = asyncio.get_running_loop()
        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stop.set)
                handled.append(sig)
            except (RuntimeError, ValueError):  # not the main thread (tests): `stop` ends it
                pass
        self.say(f"console: {console.url}/  account: {DEMO_ACCOUNT}  password: {self.password}")
        self.say("stop a simulated system from the overview to see it go red; Ctrl-C ends the demo")
        try:
            await self.stop.wait()
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            await console.stop()
