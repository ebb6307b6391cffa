"""A destination pins the schema version it takes (`[destinations.<name>] schema_version`): the
bus projects to that version of the route's target kind, the others get the latest. The second
version of zei.jumin is made for these tests, in a copy of the catalog (never shipped)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from pipeline_support import CapturingBroker, accepted_delivery

from adapters.transports.csv_layout import Layout
from adapters.transports.csvfile import CsvFileSink
from bus.catalog import Catalog
from bus.catalog.decode import decode
from bus.catalog.generate import build
from bus.cli import main
from bus.config_check import check_pins, pins_of
from bus.delivery.store import DeliveryStore
from bus.envelope import Envelope
from bus.errors import ConfigError
from bus.paths import routes_dir, schemas_dir
from bus.ports import Outbound
from bus.routing.router import RouteTable
from bus.settings import Settings
from bus.stages import DONE, ResidentLine, RouteStage, StageHooks
from bus.stages.project import project
from bus.state import StateStore
from bus.tenancy import Tenancy
from bus.topology import ROUTE_STAGE, destination_queue

V1 = (schemas_dir() / "zei.jumin" / "1" / "fields.yaml").read_text(encoding="utf-8")
ADDED = "  - {name: tax_office, type: string, optional: true, maxLength: 20, label_ja: 担当課, description: Office}\n"
CONFIG = """
[destinations.zei-old]
transport = "http"
url = "http://127.0.0.1:9/old"
system = "zei"
schema_version = {version}

[destinations.zei-new]
transport = "http"
url = "http://127.0.0.1:9/new"
system = "zei"
"""


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The shipped catalog with a zei.jumin version 2 (one optional field more), built."""
    root = tmp_path_factory.mktemp("catalog") / "schemas"
    shutil.copytree(schemas_dir(), root)
    shutil.rmtree(root / "zei.jumin" / "2")  # the shipped v2 (a preview on jumin.idou v2's items): replaced
    (root / "zei.jumin" / "2").mkdir()
    (root / "zei.jumin" / "2" / "fields.yaml").write_text(V1.replace("version: 1", "version: 2") + ADDED,
                                                          encoding="utf-8")
    build(root, docs_path=None)
    return Catalog.load(root)


def settings_of(tmp_path: Path, version: int = 1) -> Settings:
    path = tmp_path / "renkei.toml"
    path.write_text(CONFIG.replace("{version}", str(version)), encoding="utf-8")
    return Settings.load(path, env={})


async def test_a_pinned_destination_gets_its_version_and_the_others_the_latest(
        catalog: Catalog, tmp_path: Path) -> None:
    settings = settings_of(tmp_path)
    assert pins_of(settings) == {"zei-old": 1}
    table = RouteTable.load(routes_dir(), catalog)
    assert catalog.get("zei.jumin").version == 2  # the routes project to the latest
    broker = CapturingBroker()
    line = ResidentLine(DeliveryStore(tmp_path / "delivery.sqlite"), ROUTE_STAGE, StageHooks())
    stage = RouteStage(broker, catalog, table, StateStore(tmp_path / "state.sqlite"), line,  # type: ignore[arg-type]
                       tenancy=Tenancy(settings.destinations), pins=pins_of(settings))
    assert await stage.handle([await accepted_delivery(catalog, tmp_path)]) == [DONE]
    sent = {queue: message for queue, message in broker.published}
    for name, version in (("zei-old", 1), ("zei-new", 2)):
        message = sent[destination_queue(name)]
        envelope = Envelope.from_headers(message.headers)
        assert (envelope.kind, envelope.schema_version, envelope.destination) == ("zei.jumin", version, name)
        document = etree.fromstring(message.body)
        assert etree.QName(document).namespace == catalog.get("zei.jumin", version).namespace
        catalog.get("zei.jumin", version).xml_schema.assertValid(document)
    assert sent[destination_queue("zei-old")].message_id.endswith(".zei-old")  # its own idempotency key


async def test_a_destination_without_a_pin_costs_no_second_projection(catalog: Catalog, tmp_path: Path) -> None:
    table = RouteTable.load(routes_dir(), catalog)
    delivery = await accepted_delivery(catalog, tmp_path)
    envelope = Envelope.from_headers(delivery.headers)
    _, record = decode(delivery.body, envelope, catalog)
    [match] = [m for m in table.route(record, envelope.municipality) if m.route.destination == "zei"]
    assert table.pinned(match, 2, record, envelope.municipality) is match  # the latest pinned: nothing redone
    older = table.pinned(match, 1, record, envelope.municipality)
    assert older.target.version == 1 and "tax_office" not in older.record
    assert {k: v for k, v in match.record.items() if k != "tax_office"} == older.record


def test_a_pin_to_a_version_the_target_kind_lacks_is_a_config_error_naming_the_line(
        catalog: Catalog, tmp_path: Path) -> None:
    settings = settings_of(tmp_path, version=3)
    table = RouteTable.load(routes_dir(), catalog)
    with pytest.raises(ConfigError) as error:
        check_pins(settings, table.routes, catalog.versions)
    assert "[destinations.zei-old] schema_version = 3: route zei-all-changes sends it zei.jumin, " \
           "which has versions 1, 2" in str(error.value)
    assert error.value.where == f"{tmp_path / 'renkei.toml'}:6"
    check_pins(settings_of(tmp_path, version=1), table.routes, catalog.versions)  # version 1 exists: no error


def test_a_schema_version_below_one_is_refused_where_it_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[destinations.zei-old\] schema_version must be >= 1, got 0"):
        settings_of(tmp_path, version=0)


def test_schemas_compat_names_the_destinations_that_pin_a_version(catalog: Catalog, tmp_path: Path) -> None:
    settings_of(tmp_path)
    result = CliRunner().invoke(main, ["schemas", "compat", "zei.jumin", "--root", str(catalog.root),
                                       "--config", str(tmp_path / "renkei.toml")])
    assert result.exit_code == 1, result.output  # an optional field added: not FORWARD for the XSD
    assert "destinations pinning a version of zei.jumin: zei-old v1 (route zei-all-changes)" in result.output
    unpinned = CliRunner().invoke(main, ["schemas", "compat", "zei.jumin", "--root", str(catalog.root)])
    assert "destinations pinning a version of zei.jumin: none (all take the latest)" in unpinned.output


async def test_a_csv_file_of_a_pinned_destination_has_the_columns_of_its_version(
        catalog: Catalog, tmp_path: Path) -> None:
    table = RouteTable.load(routes_dir(), catalog)
    delivery = await accepted_delivery(catalog, tmp_path)
    envelope = Envelope.from_headers(delivery.headers)
    _, record = decode(delivery.body, envelope, catalog)
    [match] = [m for m in table.route(record, envelope.municipality) if m.route.destination == "zei"]
    older = table.pinned(match, 1, record, envelope.municipality)
    sink = CsvFileSink(tmp_path, encoding="utf-8", name="zei", catalog=catalog)
    out = envelope.for_destination("zei", "zei.jumin", 1, match.route.name, None)
    assert (await sink.deliver(Outbound(out, older.record, project(older)))).status == "applied"
    [published] = sink.seal_due()
    header = published.read_text(encoding="utf-8").splitlines()[0]
    assert "[tax_office]" not in header and "[change/reason]" in header  # v1's layout, not the latest's
    assert len(header.split(",")) == 1 + len(Layout(catalog.get("zei.jumin", 1)).columns)
