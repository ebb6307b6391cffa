"""`renkei simulate SYSTEM`: run the simulator of one receiving system as a server."""

from __future__ import annotations

from typing import Any

import click

from adapters.simulators.state import SYSTEMS
from bus.errors import ConfigError

__all__ = ["simulate"]


@click.command()
@click.argument("system", type=click.Choice(sorted(SYSTEMS)))
@click.option("--port", "-p", type=click.IntRange(1, 65535), required=True, help="TCP port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--store",
    type=click.Path(file_okay=False, writable=True),
    default=None,
    help="Keep each accepted message, with its body, as one line of DIR/received.jsonl (and remember "
         "them on restart).",
)
@click.option(
    "--mode",
    type=click.Choice(["ok", "slow", "fail", "reject", "down"]),
    default="ok",
    show_default=True,
    help="Initial behaviour (change it later with POST /control).",
)
@click.option("--soap-user", metavar="NAME", help="Also take SOAP 1.1 at /soap (WS-Security UsernameToken of NAME).")
@click.option("--soap-password-file", type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              help="The SOAP user's password, from this file (with --soap-user).")
def simulate(system: str, port: int, host: str, store: str | None, mode: str, soap_user: str | None,
             soap_password_file: str | None) -> None:
    """Run the simulator of SYSTEM (zei, kokuho, kaigo, koki, nenkin, fukushi, chukan, portal).

    It takes messages at POST /messages, lists what it holds at GET /received, and is
    steered with POST /control, e.g. {"mode": "fail", "fail_status": 503, "count": 3}.

    \b
    The delivery contract it implements (docs/delivery-contract.md):
      one change per POST; headers Idempotency-Key (required: message id + destination),
      X-Renkei-Message-Id, X-Renkei-Kind, X-Renkei-Schema-Version, X-Renkei-Municipality,
      X-Renkei-Subject (a pseudonym, never the 宛名番号), X-Renkei-Sequence (履歴番号);
      Content-Type application/xml or application/json.
    \b
    Answers, and what renkei does with them:
      2xx                     applied; {"status": "duplicate"} for a key already applied
      408 409 425 429 5xx     not now: retried with the same key, never sooner than
                              Retry-After (seconds) asks; so are timeouts and cut
                              connections
      other 4xx               refused for good: dead-lettered at once
    \b
    Order: per resident (X-Renkei-Subject) the next change is sent only after the previous
    one was answered 2xx; residents are independent.
    Batches (a destination with batch_size > 1): Content-Type application/vnd.renkei.batch+json,
    {"items": [...]}, answered 200 with one receipt per item (applied, duplicate, rejected,
    retry); POST /control {"mode": "reject", "key": K} refuses that one item.
    Check your own system against it: renkei conformance receiver --system SYSTEM --url URL.

    Exit status: 0 stopped by SIGINT, 2 a usage error (an unknown system).
    """
    import uvicorn

    from adapters.server import QuietDisconnects, parser_of
    from adapters.simulators.app import create_app
    from adapters.simulators.state import SimulatorState

    if (soap_user is None) != (soap_password_file is None):
        raise click.UsageError("--soap-user and --soap-password-file go together")
    try:
        parser = parser_of()
    except ConfigError as exc:  # a mistyped RENKEI_HTTP_PARSER: said before anything starts
        raise click.UsageError(str(exc)) from None
    state = SimulatorState(system, store=store)
    state.control(mode=mode)
    app: Any = create_app(system, state=state)
    info = SYSTEMS[system]
    click.echo(f"simulating {info.title}: takes {info.kind} at http://{host}:{port}/messages")
    if soap_user is not None and soap_password_file is not None:
        from pathlib import Path

        from adapters.simulators.soap import SoapSimulator

        password = Path(soap_password_file).read_text(encoding="utf-8").strip()
        app = SoapSimulator(system, username=soap_user, password=password, state=state)
        click.echo(f"  and SOAP 1.1 at http://{host}:{port}/soap (WSDL: /soap?wsdl)")
    from bus.heap import settle_heap

    settle_heap()  # a long-running server: the collector set as `renkei run` sets it (bus.heap)
    uvicorn.run(QuietDisconnects(app), host=host, port=port, log_level="warning", access_log=False,
                http=parser)
