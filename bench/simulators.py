"""The simulators of a renkei.toml's destinations, served in a process of their own.

    python -m bench.simulators --config renkei.toml      # until SIGTERM / SIGINT

What `renkei run --with-simulators` starts inside the bus process (the same apps, the same
ports, the same store under `<state_dir>/simulators`), apart from it: a benchmark that runs
them here measures the bus's own CPU and latency, not the receivers' (on two cores the
in-process simulators took about a third of the bus's one event loop: bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from adapters.server import EmbeddedServer
from adapters.simulators import SimulatorState, create_app, wire_togo
from bus.catalog import Catalog
from bus.cli.run import simulator_ports
from bus.settings import Settings

__all__ = ["main", "serve"]


async def serve(config: Path, stop: asyncio.Event) -> None:
    """Serve every HTTP destination's simulator of `config` until `stop` is set."""
    settings = Settings.load(config)
    catalog = Catalog.load()
    ports = simulator_ports(settings, sorted(settings.destinations))
    store = settings.bus.state_dir / "simulators"
    states = {name: SimulatorState(name, store=store / name) for name in ports}
    servers = [EmbeddedServer(create_app(name, catalog=catalog, state=states[name]), port=port)
               for name, port in ports.items()]
    wire_togo(states)  # the 統合宛名 function feeds the 中間サーバー and the portal
    try:
        for server in servers:
            await server.start()
        print(f"simulators: {len(servers)} serving", flush=True)
        await stop.wait()
    finally:
        await asyncio.gather(*(server.stop() for server in servers), return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulators", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(args.config, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
