"""Transports by name: built-ins, entry-point plug-ins, and clear errors for bad config."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from adapters.registry import available_transports, build_sink
from adapters.transports.filedrop import FileDropSink
from adapters.transports.http import HttpSink
from bus.errors import ConfigError


def test_built_in_transports_are_built_from_their_options(tmp_path: Path) -> None:
    http = build_sink(
        "http", {"transport": "http", "url": "https://zei.test/m", "body": "json", "timeout": 3}
    )
    assert isinstance(http, HttpSink) and http.body == "json" and http.timeout == 3
    file = build_sink("file", {"directory": str(tmp_path), "format": "fixed", "encoding": "cp932"})
    assert isinstance(file, FileDropSink) and file.encoding == "cp932"


def test_an_unknown_transport_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown transport 'carrier-pigeon'.*file, http"):
        build_sink("carrier-pigeon", {})


def test_an_unknown_option_names_it_and_the_options_there_are() -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown option\(s\) timout; it takes: batch_linger_ms, batch_size, body, headers, http_client, "
              r"name, timeout, url",
    ):
        build_sink("http", {"url": "http://zei.test/m", "timout": 3})


def test_a_missing_option_is_named() -> None:
    with pytest.raises(ConfigError, match=r"missing required option.*directory"):
        build_sink("file", {"format": "csv"})


def test_a_bad_value_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="format"):
        build_sink("file", {"directory": str(tmp_path), "format": "pdf"})


def test_a_third_party_transport_registers_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme_sink.py").write_text(
        textwrap.dedent(
            """
            class AcmeSink:
                def __init__(self, endpoint: str, retries: int = 1) -> None:
                    self.endpoint = endpoint

                async def deliver(self, message):
                    raise NotImplementedError
            """
        )
    )
    dist = tmp_path / "acme_sink-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-sink\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[renkei.adapters]\nacme = acme_sink:AcmeSink\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert available_transports()["acme"] == "acme_sink:AcmeSink"
    sink = build_sink("acme", {"endpoint": "x"})
    assert type(sink).__name__ == "AcmeSink"
    with pytest.raises(ConfigError, match="unknown option"):
        build_sink("acme", {"endpoint": "x", "colour": "red"})


def test_the_adapters_package_exports_exactly_what_it_lists() -> None:
    import adapters
    import adapters.simulators

    for package in (adapters, adapters.simulators):
        assert sorted(package.__all__) == sorted(set(package.__all__))
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"


def test_the_destination_name_set_by_the_bus_names_the_sink_and_its_errors(tmp_path: Path) -> None:
    sink = build_sink("file", {"destination": "kokuho", "directory": str(tmp_path)})
    assert isinstance(sink, FileDropSink) and sink.name == "kokuho"
    with pytest.raises(ConfigError, match=r"^\[destinations.zei\] transport 'http': unknown option"):
        build_sink("http", {"destination": "zei", "url": "http://zei.test/m", "colour": "red"})
