"""The csv transport's CP932 (csv and fixed width) folds the JIS form of a variant pair as the
file-drop sink does: — U+2014 (JIS X 0208 0x815C in JIS-based mappings) is written as CP932's
― U+2015 at the same position, not refused for good. Sibling of the file-drop fix found with
the jisx0208 encoding (tests/unit/test_filedrop_jisx0208.py)."""

from __future__ import annotations

import pytest

from adapters.transports.csv_layout import UnmappableError, encode_rows


def test_an_em_dash_in_a_csv_row_is_written_at_cp932s_0x815c() -> None:
    assert encode_rows([["山田—太郎"]], "cp932") == "山田―太郎\r\n".encode("cp932")
    assert b"\x81\x5c" in encode_rows([["—"]], "cp932")


def test_a_character_cp932_cannot_hold_is_still_refused_with_where() -> None:
    with pytest.raises(UnmappableError) as refused:
        encode_rows([["鷗"]], "cp932", headers=["氏名"])
    assert "氏名" in str(refused.value) and "U+9DD7" in str(refused.value)


def test_utf8_keeps_the_em_dash_as_it_came() -> None:
    assert encode_rows([["—"]], "utf-8") == "—\r\n".encode()


def test_an_em_dash_in_a_fixed_width_record_is_written_at_cp932s_0x815c() -> None:
    from adapters.transports.fixed_layout import FixedLayout
    from bus.catalog import Catalog
    from bus.synthetic.samples import sample_records

    catalog = Catalog.load()
    layout = FixedLayout(catalog.get("jumin.idou"), catalog.codelists)
    [record] = sample_records("jumin.idou", catalog, seed=13, n=1)
    dashed = {**record, "name": {**record["name"], "given_name": "太—郎"}}
    plain = {**record, "name": {**record["name"], "given_name": "太―郎"}}  # CP932's own ― U+2015
    assert layout.encode([("", dashed)]) == layout.encode([("", plain)])
