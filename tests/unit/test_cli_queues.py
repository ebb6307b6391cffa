"""`renkei queues` without RabbitMQ: the embedded broker has no queue arguments to migrate,
and the names a check covers (tests/integration/test_queue_migration.py does the real work)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bus.brokers.amqp import AmqpBroker
from bus.brokers.amqp.migration import expected_arguments
from bus.cli import main
from bus.cli.queues import bus_queues
from bus.settings import Settings


def test_on_the_embedded_broker_there_is_nothing_to_check_or_migrate(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\n', encoding="utf-8")
    for command in ("check", "migrate"):
        result = CliRunner().invoke(main, ["queues", command, "--config", str(config)], env={"RENKEI_BROKER_URL": None})
        assert result.exit_code == 0, result.output
        assert "the embedded broker has no queue arguments" in result.output


def test_the_bus_queues_are_the_intake_and_every_destination_each_shard(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nstate_dir = "var"\nbroker_url = "amqp://guest:guest@127.0.0.1:9/"\nshards = 2\n',
                      encoding="utf-8")
    settings = Settings.load(config, env={})
    broker = AmqpBroker("amqp://guest:guest@127.0.0.1:9/", shards=2)
    names = bus_queues("check", settings, broker)
    assert names[:2] == ["renkei.intake.shard0", "renkei.intake.shard1"]
    assert {"renkei.dest.zei.shard0", "renkei.dest.togo.shard1"} <= set(names)


def test_a_delay_queue_is_expected_with_its_ttl_and_way_back() -> None:
    broker = AmqpBroker("amqp://guest:guest@127.0.0.1:9/")
    arguments = expected_arguments(broker, "renkei.dest.zei.delay.60000ms")
    assert arguments["x-message-ttl"] == 60000 and arguments["x-dead-letter-routing-key"] == "renkei.dest.zei"
    assert expected_arguments(broker, "renkei.dest.zei") == {"x-queue-type": "quorum", "x-single-active-consumer": True}
