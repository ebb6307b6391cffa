"""Broken and duplicate variants: each is rejected by the real validator with its expected code."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bus.catalog import Catalog
from bus.errors import ValidationFailed
from bus.synthetic import CODES, Registry, copy_record, corrupt, noisy, with_duplicates
from bus.validation.validator import validate


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return list(Registry(seed=77, households=80).events(400))


def codes_of(message: dict[str, Any] | bytes, catalog: Catalog) -> set[str]:
    """The issue codes the validator reports for a message (a record is sent as XML)."""
    raw = message if isinstance(message, bytes) else catalog.get("jumin.idou").to_xml(message)
    try:
        validate(raw, content_type="application/xml", catalog=catalog)
    except ValidationFailed as exc:
        return {issue.code for issue in exc.issues}
    return set()


@pytest.mark.parametrize("code", sorted(CODES))
def test_each_variant_fails_with_exactly_its_code(
    code: str, records: list[dict[str, Any]], catalog: Catalog
) -> None:
    """corrupt(record, rng, code) breaks one rule: the validator reports that code and no other."""
    rng = random.Random(code)
    for record in records[:: len(records) // 60]:
        bad, expected = corrupt(record, rng, code, catalog=catalog)
        assert expected == code
        assert isinstance(bad, bytes) == (code == "R300")
        assert codes_of(bad, catalog) == {code}, (record["change"]["reason"], bad)


def test_random_variants_come_from_the_demo_set(records: list[dict[str, Any]], catalog: Catalog) -> None:
    """Without a code, corrupt picks one of R300/R401/R410/R430/R440, and never touches its input."""
    rng = random.Random(3)
    seen = set()
    for record in records[:100]:
        before = copy_record(record)
        bad, code = corrupt(record, rng, catalog=catalog)
        assert record == before
        assert codes_of(bad, catalog) == {code}
        seen.add(code)
    assert seen == {"R300", "R401", "R410", "R430", "R440"}
    with pytest.raises(ValueError, match="R401"):
        corrupt(records[0], rng, "R999")


def test_duplicates_are_equal_copies(records: list[dict[str, Any]]) -> None:
    """with_duplicates re-sends some recent records as equal but separate copies; nothing is lost."""
    out = list(with_duplicates(records, random.Random(1), rate=0.2))
    assert len(out) > len(records)
    originals = {id(r) for r in records}
    copies = [r for r in out if id(r) not in originals]
    assert copies and all(c in records for c in copies)
    assert [r for r in out if id(r) in originals] == records


def test_noisy_stream_labels_every_message(records: list[dict[str, Any]], catalog: Catalog) -> None:
    """noisy() says what each message is; valid ones pass, broken ones fail with their code, in order."""
    stream = list(noisy(records[:200], random.Random(5), invalid=0.1, duplicates=0.1, catalog=catalog))
    labels = {expected for _, expected in stream}
    assert {None, "duplicate"} <= labels and len(labels) > 3
    valid = [m for m, expected in stream if expected is None]
    assert valid == records[:200]
    for message, expected in stream:
        if expected not in (None, "duplicate"):
            assert codes_of(message, catalog) == {expected}
        elif expected == "duplicate":
            assert message in records
