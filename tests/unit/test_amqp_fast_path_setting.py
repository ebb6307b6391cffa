"""`[bus] amqp_fast_path` (env RENKEI_AMQP_FAST_PATH): on by default, reaches the RabbitMQ
broker, and a value that is not a boolean is an error naming file:line or the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.brokers import broker_for
from bus.brokers.amqp import AmqpBroker
from bus.errors import ConfigError
from bus.settings import Settings

URL = 'broker_url = "amqp://u:p@127.0.0.1:5672/v"\n'


def _broker(config: Path, env: dict[str, str]) -> AmqpBroker:
    broker = broker_for(Settings.load(config, env=env))
    assert isinstance(broker, AmqpBroker)
    return broker


def test_the_fast_path_is_on_unless_the_config_or_the_environment_turns_it_off(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text("[bus]\n" + URL, encoding="utf-8")
    assert _broker(config, {}).fast_path is True
    assert _broker(config, {"RENKEI_AMQP_FAST_PATH": "0"}).fast_path is False
    config.write_text("[bus]\n" + URL + "amqp_fast_path = false\n", encoding="utf-8")
    assert _broker(config, {}).fast_path is False
    assert _broker(config, {"RENKEI_AMQP_FAST_PATH": "1"}).fast_path is True  # the environment wins


def test_a_fast_path_setting_that_is_not_a_boolean_names_where_it_is(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text("[bus]\n" + URL + 'amqp_fast_path = "fast"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[bus\] amqp_fast_path must be true or false") as info:
        Settings.load(config, env={})
    assert f"{config}:3" in str(info.value)
    config.write_text("[bus]\n" + URL, encoding="utf-8")
    with pytest.raises(ConfigError, match="RENKEI_AMQP_FAST_PATH"):
        Settings.load(config, env={"RENKEI_AMQP_FAST_PATH": "maybe"})
