"""`renkei conformance`: prove that a vendor's system behaves as the bus needs.

    renkei conformance receiver --system zei --url http://127.0.0.1:8700/messages \\
        --junit report.xml --html report.html
    renkei conformance sender --port 8650 --count 100     # then send to :8650/v1/messages
    renkei conformance wsdl zei.jumin --location https://zei.example.lg.jp/soap

Exit status: 0 every check passed (or was not applicable), 1 a check failed, 2 usage error.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adapters.simulators.state import SYSTEMS
from bus.topology import SUBMIT_QUEUE

if TYPE_CHECKING:
    from bus.conformance.sender import SenderCheck

__all__ = ["conformance"]


@click.group()
def conformance() -> None:
    """Conformance kits for the vendors of receiving and sending systems."""


@conformance.command("receiver")
@click.option("--system", required=True, type=click.Choice(sorted(SYSTEMS)),
              help="Which receiving system yours is (decides the kind sent, e.g. zei → zei.jumin).")
@click.option("--url", required=True, help="Your endpoint, as configured in renkei.toml (POST target).")
@click.option("--batch", is_flag=True,
              help="The receiver takes batches (batch_size > 1): check its batch answers too (else: not applicable).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds an answer may take (the HTTP sink's timeout).")
@click.option("--body", type=click.Choice(["xml", "json"]), default="xml", show_default=True,
              help="Body encoding, as the destination's `body` option.")
@click.option("--applied-keys", type=click.Path(dir_okay=False, path_type=Path),
              help="A file your system writes: one applied Idempotency-Key a line, in the order applied "
                   "(default: read GET <base>/received when it exists).")
@click.option("--header", "headers", multiple=True, metavar="NAME:VALUE",
              help="An extra header every request carries (e.g. Authorization: Bearer …); repeatable.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write a JUnit XML report here.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write an HTML report here.")
def receiver(system: str, url: str, batch: bool, timeout: float, body: str, applied_keys: Path | None,
             headers: tuple[str, ...], junit: Path | None, html_path: Path | None) -> None:
    """Run the delivery contract (docs/delivery-contract.md) against your receiving system.

    Sends schema-valid changes of every 異動事由 group, resends, a resident's changes in
    order, invalid messages and one without Idempotency-Key, and checks each answer and
    (through the read-back) each effect. Prints one line per check with its evidence.

    Exit status: 0 every check passed, 1 a check failed, 2 a usage error.
    """
    from bus.catalog import Catalog
    from bus.conformance.receiver import ReceiverKit, ReceiverOptions

    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http(s):// URL", param_hint="--url")
    extra: dict[str, str] = {}
    for item in headers:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not NAME:VALUE", param_hint="--header")
        extra[name.strip()] = value.strip()
    options = ReceiverOptions(system, url, timeout=timeout, body=body,  # type: ignore[arg-type]
                              applied_keys=applied_keys, batch=batch, headers=extra)
    report = asyncio.run(ReceiverKit(options, Catalog.load()).run())
    _write_reports(report, junit, html_path)


@conformance.command("sender")
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=8650, show_default=True,
              help="Port of the kit's intake (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many messages.")
@click.option("--duration", type=click.FloatRange(min=0.1), help="Stop after this many seconds.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write a JUnit XML report here.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write an HTML report here.")
@click.option("--amqp", "amqp_url", metavar="URL",
              help="Take the messages over AMQP instead: consume the intake queue in this vhost of your "
                   "test broker, answering as the bus's AMQP intake (reply_to, correlation_id).")
@click.option("--queue", default=SUBMIT_QUEUE, show_default=True, help="With --amqp: the queue to consume.")
def sender(port: int, host: str, count: int | None, duration: float | None, junit: Path | None,
           html_path: Path | None, amqp_url: str | None, queue: str) -> None:
    """Check what your sending system (the registry) sends: run this, point your system at
    the printed URL (it answers as the bus's HTTP intake: 202, 200 duplicate, 422) or, with
    --amqp, publish into the queue as into the bus's AMQP intake (bus.client.AmqpClient), send
    a test run, then stop it (Ctrl-C, --count or --duration) for the report.

    Checks: every message valid; 履歴番号 increasing per resident; no id sent twice with
    different content; every 取消 naming a 履歴番号 sent before.

    Exit status: 0 every check passed, 1 a check failed, 2 a usage error.
    """
    from bus.catalog import Catalog
    from bus.conformance.sender import SenderCheck

    check = SenderCheck(Catalog.load())
    asyncio.run(_serve_sender(check, host, port, count, duration, amqp_url, queue))
    _write_reports(check.report(), junit, html_path)


async def _serve_sender(check: SenderCheck, host: str, port: int, count: int | None, duration: float | None,
                        amqp_url: str | None = None, queue: str = SUBMIT_QUEUE) -> None:
    if amqp_url is not None:
        from bus.conformance.sender_amqp import amqp_sender
        from bus.errors import BrokerError
        from bus.urls import without_password

        try:
            async with amqp_sender(check, amqp_url, queue=queue):
                click.echo(f"sender kit consuming {queue} at {without_password(amqp_url)}", err=True)
                await _until_done(check, count, duration)
        except BrokerError as exc:
            raise click.ClickException(str(exc)) from exc
        return
    from adapters.simulators.cluster import EmbeddedServer
    from bus.conformance.sender import create_sender_app

    server = EmbeddedServer(create_sender_app(check), host=host, port=port)
    await server.start()
    click.echo(f"sender kit listening on {server.url}/v1/messages", err=True)
    try:
        await _until_done(check, count, duration)
    finally:
        await server.stop()


async def _until_done(check: SenderCheck, count: int | None, duration: float | None) -> None:
    """Until Ctrl-C (or SIGTERM), `count` messages or `duration` seconds."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deadline = loop.time() + duration if duration else None
    while not stop.is_set():
        if (count is not None and check.received >= count) or (deadline and loop.time() >= deadline):
            break
        await asyncio.sleep(0.05)


def _write_reports(report: Any, junit: Path | None, html_path: Path | None) -> None:
    click.echo(report.to_text(), nl=False)
    if junit is not None:
        junit.write_bytes(report.to_junit())
        click.echo(f"JUnit XML: {junit}")
    if html_path is not None:
        html_path.write_text(report.to_html(), encoding="utf-8")
        click.echo(f"HTML: {html_path}")
    raise SystemExit(0 if report.passed else 1)


@conformance.command("docs")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/kinds"),
              show_default=True, help="Directory for the pages (one per kind, and README.md).")
def docs_command(out: Path) -> None:
    """Write one page per kind for vendors: fields, who receives which, samples in XML, JSON, CSV.

    Exit status: 0 written, 2 a usage error."""
    from bus.catalog import Catalog
    from bus.conformance.pages import write_pages
    from bus.routing.router import RouteTable

    catalog = Catalog.load()
    for path in write_pages(catalog, RouteTable.load(None, catalog), out):
        click.echo(f"wrote {path}")


@conformance.command("wsdl")
@click.argument("kind")
@click.option("--location", required=True, help="Where your SOAP endpoint will listen (the service address).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
def wsdl_command(kind: str, location: str, out: Path | None) -> None:
    """Write the WSDL 1.1 of the SOAP sink for KIND (generated from the kind's XSD).

    Feed it to your SOAP toolkit for a service skeleton: one Deliver operation, document/
    literal, a WS-Security UsernameToken and the rk:Delivery header (docs/delivery-contract.md).

    Exit status: 0 written, 2 a usage error (an unknown kind).
    """
    from adapters.transports.soap_wsdl import wsdl
    from bus.catalog import Catalog

    catalog = Catalog.load()
    if kind not in catalog.kinds():
        raise click.BadParameter(f"unknown kind {kind!r}; known: {', '.join(catalog.kinds())}", param_hint="KIND")
    document = wsdl(catalog.get(kind), location)
    if out is None:
        click.echo(document.decode("utf-8"), nl=False)
    else:
        out.write_bytes(document)
