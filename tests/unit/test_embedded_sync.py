"""`[bus] embedded_sync`: the embedded broker fsyncs each publish ("full", the default: accepted
survives a power cut) or leaves it to the OS ("normal": survives a killed bus, not a power cut)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.brokers import broker_for
from bus.brokers.base import OutgoingMessage
from bus.brokers.embedded import EmbeddedBroker
from bus.errors import ConfigError
from bus.settings import Settings


@pytest.mark.parametrize(("setting", "pragma"), [(None, 2), ("full", 2), ("normal", 1)])
async def test_a_publish_commits_with_the_synchronous_mode_the_setting_names(
        tmp_path: Path, setting: str | None, pragma: int) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text(f'[bus]\nstate_dir = "{tmp_path / "var"}"\n'
                      + (f'embedded_sync = "{setting}"\n' if setting else ""), encoding="utf-8")
    broker = broker_for(Settings.load(config, env={}))
    assert isinstance(broker, EmbeddedBroker) and broker.sync == (setting or "full")
    await broker.connect()
    try:
        await broker.declare("q")
        await broker.publish("q", OutgoingMessage(b"x", "m-1", "k"))
        # a job run as a publish is (durable): the mode its transaction commits with
        synchronous = await broker._run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0], durable=True)
        assert synchronous == pragma
    finally:
        await broker.close()


def test_an_unknown_sync_mode_is_refused_naming_its_line(tmp_path: Path) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text('[bus]\nembedded_sync = "off"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="embedded_sync") as info:
        Settings.load(config, env={})
    assert f"{config}:2" in str(info.value)
