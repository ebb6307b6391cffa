"""Which fields are personal is said once, in the catalog's fields.yaml, and every view masks
from it: a walk of every kind's personal fields through every view that shows a message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import etree

from bus.catalog import Catalog
from bus.catalog.spec import iter_leaves
from bus.cli import main
from bus.logs import mask_personal
from bus.masking import is_personal, mask_record, mask_xml, personal_fields
from bus.paths import schemas_dir

CATALOG = Catalog.load()
KINDS = CATALOG.kinds()


def _sample(kind: str) -> Path:
    return sorted((schemas_dir() / kind / "1" / "samples" / "valid").glob("*.xml"))[0]


def _values(record: Any, path: tuple[str, ...], found: list[str]) -> None:
    """Every scalar at `path` (record keys; lists walked through)."""
    if isinstance(record, list):
        for item in record:
            _values(item, path, found)
    elif not path:
        if isinstance(record, dict):
            for value in record.values():
                _values(value, (), found)
        elif record not in (None, "") and len(str(record)) >= 3:
            found.append(str(record))
    elif isinstance(record, dict) and path[0] in record:
        _values(record[path[0]], path[1:], found)


def personal_values(kind: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """The decoded sample of `kind`, the catalog's personal paths in it, and their values."""
    schema = CATALOG.get(kind)
    root = etree.fromstring(_sample(kind).read_bytes())
    record = schema.from_xml(root)
    leaves = list(iter_leaves(schema.fields))
    paths = [p for p, f in leaves if f.personal]
    found: list[str] = []
    for path in paths:
        _values(record, tuple(segment.removesuffix("[]") for segment in path.split("/")), found)
    others: list[str] = []  # a value also held by a field that is not personal (a date) proves nothing
    for path, f in leaves:
        if not f.personal and f.type not in ("record", "list") and not any(path.startswith(p + "/") for p in paths):
            _values(record, tuple(segment.removesuffix("[]") for segment in path.split("/")), others)
    return record, paths, [v for v in found if v not in others]


@pytest.mark.parametrize("kind", KINDS)
def test_every_personal_field_of_every_kind_is_masked_in_every_view(kind: str) -> None:
    """The paths fields.yaml marks personal are personal to every check (errors use it), and the
    sample's values of them appear in no view: dead show (mask_record), logs (the processor, the
    record logged whole or field by field), the XML view (routes test)."""
    record, paths, values = personal_values(kind)
    assert paths and values, f"{kind}: the sample has no personal value to check"
    assert all(is_personal(path) for path in paths)
    views = {
        "dead show": json.dumps(mask_record(record), ensure_ascii=False),
        "logs": json.dumps(mask_personal(None, "info", {"event": "x", "record": record,
                                                        **{p.rsplit("/", 1)[-1].removesuffix("[]"): v
                                                           for p, v in zip(paths, values, strict=False)}}),
                           ensure_ascii=False, default=str),
        "xml": mask_xml(_sample(kind).read_bytes()),
    }
    for view, text in views.items():
        leaked = [v for v in values if v in text]
        assert not leaked, f"{kind}: {view} shows {leaked}"


def test_the_portal_recipients_integrated_address_number_is_personal() -> None:
    """portal.oshirase marks recipient_integrated_address_number personal; masking knew only a
    fixed list of names and printed it."""
    assert "recipient_integrated_address_number" in personal_fields()
    record, _, values = personal_values("portal.oshirase")
    assert record["recipient_integrated_address_number"] in values
    assert record["recipient_integrated_address_number"] not in json.dumps(mask_record(record), ensure_ascii=False)


def test_routes_test_masks_personal_values_unless_asked() -> None:
    """`renkei routes test` printed 個人番号, names and addresses in the clear."""
    sample = _sample("jumin.idou")
    _, _, values = personal_values("jumin.idou")
    masked = CliRunner().invoke(main, ["routes", "test", str(sample)])
    assert masked.exit_code == 0, masked.output
    assert "---" in masked.output and not [v for v in values if v in masked.output]
    as_json = CliRunner().invoke(main, ["routes", "test", str(sample), "--json"])
    assert not [v for v in values if v in as_json.output]
    unmasked = CliRunner().invoke(main, ["routes", "test", str(sample), "--unmasked"])
    assert unmasked.exit_code == 0 and [v for v in values if v in unmasked.output]
