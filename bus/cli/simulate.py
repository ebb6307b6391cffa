"""`renkei simulate SYSTEM`: run the simulator of one receiving system as a server."""

from __future__ import annotations

import click

from adapters.simulators.state import SYSTEMS

__all__ = ["simulate"]


@click.command()
@click.argument("system", type=click.Choice(sorted(SYSTEMS)))
@click.option("--port", "-p", type=click.IntRange(1, 65535), required=True, help="TCP port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--store",
    type=click.Path(file_okay=False, writable=True),
    default=None,
    help="Keep each accepted message as one file in this directory (and remember them on restart).",
)
@click.option(
    "--mode",
    type=click.Choice(["ok", "slow", "fail", "reject", "down"]),
    default="ok",
    show_default=True,
    help="Initial behaviour (change it later with POST /control).",
)
def simulate(system: str, port: int, host: str, store: str | None, mode: str) -> None:
    """Run the simulator of SYSTEM (zei, kokuho, kaigo, koki, nenkin, fukushi, chukan, portal).

    It takes messages at POST /messages, lists what it holds at GET /received, and is
    steered with POST /control, e.g. {"mode": "fail", "fail_status": 503, "count": 3}.

    Exit status: 0 stopped by SIGINT, 2 a usage error (an unknown system).
    """
    import uvicorn

    from adapters.simulators.app import create_app
    from adapters.simulators.state import SimulatorState

    state = SimulatorState(system, store=store)
    state.control(mode=mode)
    app = create_app(system, state=state)
    info = SYSTEMS[system]
    click.echo(f"simulating {info.title}: takes {info.kind} at http://{host}:{port}/messages")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
