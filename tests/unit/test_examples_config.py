"""examples/renkei.toml runs as it is: on the embedded broker (RabbitMQ by an environment
variable, no edit), on ports a local RabbitMQ or web server does not hold, its state outside
the checkout, every destination one the routes address."""

from __future__ import annotations

from pathlib import Path

from adapters.registry import sink_options
from bus.catalog import Catalog
from bus.config_check import check_destinations
from bus.paths import routes_dir
from bus.routing.router import RouteTable
from bus.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "renkei.toml"
#: a local RabbitMQ (AMQP, TLS, management) and the usual local web servers
TAKEN = {80, 443, 5671, 5672, 15672, 8000, 8080, 8443, 8888, 3000, 5000}


def test_the_example_runs_on_the_embedded_broker_unless_the_environment_names_one() -> None:
    assert Settings.load(EXAMPLE, env={}).bus.broker_url is None
    url = "amqp://guest:guest@127.0.0.1:5673/"
    assert Settings.load(EXAMPLE, env={"RENKEI_BROKER_URL": url}).bus.broker_url == url


def test_the_example_listens_where_no_local_rabbitmq_or_web_server_does() -> None:
    settings = Settings.load(EXAMPLE, env={})
    ports = {settings.intake.http_port} | {
        int(str(d.options["url"]).split(":")[2].split("/")[0]) for d in settings.destinations.values()}
    assert ports.isdisjoint(TAKEN), ports & TAKEN


def test_the_example_keeps_its_state_outside_the_checkout() -> None:
    settings = Settings.load(EXAMPLE, env={})
    for path in (settings.bus.state_dir, settings.intake.inbox, Path(settings.audit_store)):
        assert path is not None and not path.resolve().is_relative_to(ROOT), path


def test_the_example_passes_the_checks_run_makes_and_configures_every_routed_destination() -> None:
    settings = Settings.load(EXAMPLE, env={})
    table = RouteTable.load(routes_dir(), Catalog.load())
    check_destinations(settings, (r.destination for r in table.routes), sink_options)  # raises if not
    assert {r.destination for r in table.routes} <= set(settings.destinations)
