"""Samples of every catalog kind, built from the synthetic registry, pass the validator."""

from __future__ import annotations

import pytest

from bus.catalog import Catalog
from bus.synthetic.model import age_on
from bus.synthetic.samples import PROJECTION_KINDS, sample_records
from bus.validation.validator import validate

CATALOG = Catalog.load()


@pytest.mark.parametrize("kind", CATALOG.kinds())
def test_samples_of_every_kind_are_valid_xml_and_avro(kind: str) -> None:
    """Ten samples of each kind validate as XML and as Avro, and the same seed gives the same ones."""
    ks = CATALOG.get(kind)
    records = list(sample_records(kind, CATALOG, seed=4, n=10))
    assert len(records) == 10
    for record in records:
        validate(ks.to_xml(record), content_type="application/xml", kind=kind, catalog=CATALOG)
        validate(ks.to_avro(record), content_type="application/avro", kind=kind, catalog=CATALOG)
    assert records == list(sample_records(kind, CATALOG, seed=4, n=10))


def test_projection_samples_follow_the_default_routes() -> None:
    """kaigo.jumin samples are about people aged 40+, koki 65+; chukan.fukuhon has no 個人番号."""
    for kind, minimum in (("kaigo.jumin", 40), ("koki.jumin", 65)):
        for r in sample_records(kind, CATALOG, seed=1, n=20):
            assert age_on(r["birth_date"], r["change"]["effective_date"]) >= minimum
    for r in sample_records("chukan.fukuhon", CATALOG, seed=1, n=20, reasons=["SHIBOU"]):
        assert "personal_number" not in r and "address_number" not in r
        assert r["deceased"] and r["death_date"] == r["change"]["effective_date"]
    assert set(PROJECTION_KINDS) <= set(CATALOG.kinds())


def test_event_filter_and_its_limits() -> None:
    """reasons= picks the 異動事由 (symbol or group); it does not apply to the portal kinds."""
    got = {r["change"]["reason"] for r in sample_records("jumin.idou", CATALOG, n=30, reasons=["decrease"])}
    assert got <= {"TENSHUTSU", "KOKUGAI_TENSHUTSU", "SHIBOU", "SHOKKEN_SHOJO"}
    with pytest.raises(ValueError, match="does not apply"):
        list(sample_records("portal.shinsei", CATALOG, n=1, reasons=["TENNYU"]))
