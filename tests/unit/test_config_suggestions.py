"""A misspelt key or destination in renkei.toml is named at its line, with the name meant
("did you mean"), by `renkei run` and `renkei status` alike; nothing is started first."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from test_cli_run_config import GOOD  # the same small valid config

from bus.cli import main
from bus.suggest import suggest, unknown_keys


@pytest.mark.parametrize(("text", "says"), [
    (GOOD + "concurency = 4\n",
     "renkei.toml:10: unknown key(s) in [destinations.zei]: concurency; did you mean 'concurrency'?"),
    (GOOD.replace("destinations.zei]", "destinations.zeii]"),
     "renkei.toml:7: [destinations.zeii]: no route addresses 'zeii'; did you mean 'zei'?"),
    (GOOD.replace('state_dir = "var"', 'state_dir = "var"\nbroker_urll = "amqp://x"'),
     "renkei.toml:3: unknown key(s) in [bus]: broker_urll; did you mean 'broker_url'?"),
    (GOOD.replace("http_port = 0", "http_port = 0\nhttp_prot = 1"),
     "renkei.toml:6: unknown key(s) in [intake]: http_prot; did you mean 'http_port'?"),
    (GOOD.replace('state_dir = "var"', 'state_dir = "var"\nbroker_url = "amqq://u:secret@127.0.0.1/"'),
     "renkei.toml:3: [bus] broker_url has an unknown scheme amqq:// (use amqp://"),
    (GOOD.replace('state_dir = "var"', 'state_dir = "var"\nbroker_url = "u:secret@127.0.0.1:5672"'),
     "renkei.toml:3: [bus] broker_url has no scheme"),
    (GOOD + "[destinations.zei.retry]\natempts = 3\n",
     "renkei.toml:11: unknown key(s) in the retry table: atempts; did you mean 'attempts'?"),
    (GOOD + '[destinations.kokuho-a]\ntransport = "http"\nurl = "http://127.0.0.1:9102/messages"\nsystem = "kokhuo"\n',
     "renkei.toml:13: [destinations.kokuho-a]: no route addresses 'kokhuo'; did you mean 'kokuho'?"),
])
@pytest.mark.parametrize("command", ["run", "status"])
@pytest.mark.timeout(60)
def test_a_misspelt_key_is_named_at_its_line_with_the_key_meant(
    tmp_path: Path, text: str, says: str, command: str
) -> None:
    config = tmp_path / "renkei.toml"
    config.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, [command, "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "Traceback" not in result.output and "secret" not in result.output
    assert "Task was destroyed" not in result.output
    assert not (tmp_path / "var" / "broker.sqlite").exists()  # nothing was started


def test_a_misspelt_destination_starts_no_consumer_and_leaves_no_pending_task(tmp_path: Path) -> None:
    """Before, the bus declared the routed queues, failed to consume from `zeii`'s and left its
    dispatcher's tasks pending ("Task was destroyed but it is pending!" on exit)."""
    import subprocess
    import sys

    config = tmp_path / "renkei.toml"
    config.write_text(GOOD.replace("destinations.zei]", "destinations.zeii]"), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bus.cli", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "did you mean 'zei'?" in done.stderr
    assert "Task was destroyed" not in done.stderr + done.stdout
    assert "never declared" not in done.stderr


def test_the_suggestion_is_the_closest_name_or_nothing() -> None:
    assert suggest("concurency", ["transport", "concurrency"]) == "; did you mean 'concurrency'?"
    assert suggest("colour", ["transport", "concurrency"]) == ""
    two = unknown_keys("[bus]", ["statedir", "shard"], ["state_dir", "shards"])
    assert "did you mean 'shard' → 'shards', 'statedir' → 'state_dir'?" in two


def test_a_destination_no_route_names_and_that_resembles_none_is_allowed(tmp_path: Path) -> None:
    """A system being wired up (or a simulator's peer, as chukan is to togo) waits with an empty
    queue; only a near miss of a routed name is taken for a typo."""
    from adapters.registry import sink_options
    from bus.catalog import Catalog
    from bus.config_check import check_destinations
    from bus.paths import routes_dir
    from bus.routing.router import RouteTable
    from bus.settings import Settings

    config = tmp_path / "renkei.toml"
    config.write_text(GOOD + '[destinations.toshokan]\ntransport = "http"\nurl = "http://127.0.0.1:9/messages"\n',
                      encoding="utf-8")
    table = RouteTable.load(routes_dir(), Catalog.load())
    check_destinations(Settings.load(config, env={}), (r.destination for r in table.routes), sink_options)
