"""Configuration mistakes: `renkei run` and `renkei status` say what is wrong and where
(file:line), exit 2, and never print a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bus.cli import main
from bus.errors import ConfigError
from bus.settings import Settings

GOOD = """\
[bus]
state_dir = "var"

[intake]
http_port = 0

[destinations.zei]
transport = "http"
url = "http://127.0.0.1:9101/messages"
"""


def _invoke(tmp_path: Path, text: str | None, *args: str, command: str = "run") -> Result:
    config = tmp_path / "renkei.toml"
    if text is not None:
        config.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, [command, "--config", str(config), *args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


@pytest.mark.parametrize(("text", "says"), [
    (None, "renkei.toml: config file not found"),
    ("[bus\n", "renkei.toml: not valid TOML"),
    ("[buss]\n", "unknown key(s) in the top level: buss"),
    (GOOD.replace("http_port = 0", 'http_port = "eighty"'), "renkei.toml:5: [intake] http_port must be an integer"),
    (GOOD.replace("http_port = 0", "http_port = 70000"), "renkei.toml:5: [intake] http_port must be 0..65535"),
    (GOOD + "concurrency = 0\n", "renkei.toml:10: [destinations.zei] concurrency must be 1..1024, got 0"),
    (GOOD.replace('transport = "http"\n', ""), "renkei.toml:7: [destinations.zei] needs a 'transport'"),
    (GOOD + '[logging]\nlevel = "loud"\n', "renkei.toml:11: [logging] level must be one of"),
    (GOOD.replace('state_dir = "var"', 'state_dir = "var"\nmunicipalities = [131016]'),
     "renkei.toml:3: [bus] municipalities must be a list of 6-digit"),
])
@pytest.mark.parametrize("command", ["run", "status"])
def test_a_broken_config_file_is_named_with_its_line_and_exits_2(
    tmp_path: Path, text: str | None, says: str, command: str
) -> None:
    result = _invoke(tmp_path, text, command=command)
    assert result.exit_code == 2
    assert f"renkei {command}: error: " in result.output
    assert says in result.output


def test_an_unknown_transport_is_a_config_error_of_its_destination(tmp_path: Path) -> None:
    result = _invoke(tmp_path, GOOD.replace('transport = "http"', 'transport = "carrier-pigeon"'))
    assert result.exit_code == 2
    assert "unknown transport 'carrier-pigeon'" in result.output


def test_an_unknown_sink_option_names_the_destination(tmp_path: Path) -> None:
    result = _invoke(tmp_path, GOOD + "colour = 'blue'\n")
    assert result.exit_code == 2
    assert "renkei.toml:10: unknown key(s) in [destinations.zei]: colour (known: transport" in result.output


def test_an_unknown_destination_option_on_the_command_line_exits_2(tmp_path: Path) -> None:
    result = _invoke(tmp_path, GOOD, "--destination", "zie")
    assert result.exit_code == 2
    assert "--destination zie: no route or [destinations] table addresses it" in result.output


def test_destination_does_not_apply_to_the_router_role(tmp_path: Path) -> None:
    result = _invoke(tmp_path, GOOD, "--role", "router", "--destination", "zei")
    assert result.exit_code == 2
    assert "--destination applies to --role all or deliver" in result.output


def test_simulators_only_run_on_this_machine(tmp_path: Path) -> None:
    remote = GOOD.replace("127.0.0.1:9101", "zei.example.lg.jp:9101")
    result = _invoke(tmp_path, remote, "--with-simulators")
    assert result.exit_code == 2
    assert "[destinations.zei] url must be http://127.0.0.1:PORT/messages" in result.output


def test_simulators_exist_only_for_the_known_systems(tmp_path: Path) -> None:
    text = GOOD.replace("[destinations.zei]", "[destinations.toshokan]") + 'system = "zei"\n'
    result = _invoke(tmp_path, text, "--with-simulators")
    assert result.exit_code == 2
    assert "no simulator for destination 'toshokan'" in result.output


def test_an_unknown_broker_scheme_exits_2(tmp_path: Path) -> None:
    result = _invoke(tmp_path, GOOD.replace('state_dir = "var"', 'state_dir = "var"\nbroker_url = "kafka://x"'))
    assert result.exit_code == 2
    assert "renkei.toml:3: [bus] broker_url has an unknown scheme kafka://" in result.output


def test_an_unreachable_broker_exits_1_without_its_password(tmp_path: Path) -> None:
    text = GOOD.replace('state_dir = "var"', 'state_dir = "var"\nbroker_url = "amqp://renkei:s3cret@127.0.0.1:1/"')
    result = _invoke(tmp_path, text)
    assert result.exit_code == 1
    assert "renkei run: error: cannot use the broker amqp://renkei:***@127.0.0.1:1/" in result.output
    assert "s3cret" not in result.output


def test_environment_overrides_are_named_as_such() -> None:
    with pytest.raises(ConfigError, match=r"environment variable RENKEI_HTTP_PORT: .*must be an integer"):
        Settings.load(None, env={"RENKEI_HTTP_PORT": "x"})


def test_the_sample_config_loads_and_wires_every_default_destination_to_a_simulator() -> None:
    from adapters.simulators import SYSTEMS
    from bus.cli.run import simulator_ports

    sample = Path(__file__).resolve().parents[2] / "examples" / "renkei.toml"
    settings = Settings.load(sample, env={})
    assert settings.bus.broker_url is None  # the embedded broker, RabbitMQ by RENKEI_BROKER_URL (no edit)
    assert set(settings.destinations) == set(SYSTEMS)
    ports = simulator_ports(settings, sorted(settings.destinations))
    assert len(set(ports.values())) == len(SYSTEMS)


def test_bus_shards_are_read_checked_and_given_to_the_rabbitmq_broker(tmp_path: Path) -> None:
    """[bus] shards reaches the AMQP broker; out of range is an error naming file:line."""
    from bus.brokers import broker_for
    from bus.brokers.amqp import AmqpBroker
    from bus.errors import ConfigError
    from bus.settings import Settings

    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nbroker_url = "amqp://u:p@127.0.0.1:5672/v"\nshards = 4\n', encoding="utf-8")
    broker = broker_for(Settings.load(config, env={}))
    assert isinstance(broker, AmqpBroker) and broker.shards == 4
    config.write_text('[bus]\nshards = 0\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"shards") as info:
        Settings.load(config, env={})
    assert f"{config}:2" in str(info.value)
