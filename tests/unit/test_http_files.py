"""A file-linkage CSV through the HTTP intake (`POST /v1/files`): every row goes to the bus as the
inbox would send it, and the answer counts them and names each rejected row, never its values."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pipeline_support import KEY, CapturingBroker

from adapters.sources.http_intake import create_intake_app
from adapters.transports.csv_layout import Layout, control_record, encode_rows
from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.stages import IntakeStage
from bus.state import StateStore
from bus.synthetic.samples import sample_records

CSV = {"content-type": "text/csv"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def _client(catalog: Catalog, tmp_path: Path) -> tuple[httpx.AsyncClient, CapturingBroker]:
    broker = CapturingBroker()
    intake = IntakeStage(broker, catalog, StateStore(tmp_path / "state.sqlite"), Pseudonymizer(KEY))  # type: ignore[arg-type]
    app = create_intake_app(intake, catalog=catalog)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake"), broker


async def test_a_cp932_file_goes_in_row_by_row_and_a_gaiji_row_is_named_not_quoted(
        catalog: Catalog, tmp_path: Path) -> None:
    layout = Layout(catalog.get("jumin.idou"))
    records = list(sample_records("jumin.idou", catalog, seed=12, n=5))
    good, gaiji = records[:4], records[4]
    head = encode_rows([layout.headers(), *(layout.row(r) for r in good)], "cp932")
    gaiji_row = encode_rows([layout.row({**gaiji, "name": {**gaiji["name"], "given_name": "子"}})], "cp932")
    gaiji_row = gaiji_row.replace("子".encode("cp932"), b"\xf0\x40" + "子".encode("cp932"), 1)  # user area F040
    data = head + gaiji_row
    data += control_record(data)
    client, broker = _client(catalog, tmp_path)
    async with client:
        answer = await client.post("/v1/files", content=data, headers=CSV)
        again = await client.post("/v1/files", content=data, headers=CSV)
    assert answer.status_code == 422
    body = answer.json()
    assert (body["encoding"], body["rows"], body["counts"]) == ("cp932", 5, {"accepted": 4, "duplicate": 0,
                                                                             "rejected": 1})
    [row] = body["rejected_rows"]
    assert row["row"] == 6 and row["issues"][0]["code"] == "R440"
    assert gaiji["name"]["family_name"] not in answer.text  # the row is named, its values are not
    assert len(broker.published) == 4
    assert again.json()["counts"] == {"accepted": 0, "duplicate": 4, "rejected": 1}  # sent twice: no second effect


async def test_a_file_in_another_layout_or_altered_after_its_control_record_is_refused_whole(
        catalog: Catalog, tmp_path: Path) -> None:
    layout = Layout(catalog.get("jumin.idou"))
    record = next(iter(sample_records("jumin.idou", catalog, seed=3, n=1)))
    body = encode_rows([layout.headers(), layout.row(record)], "utf-8")
    altered = body + control_record(body)
    altered = altered.replace(b"\r\n", b"\r\n\r\n", 1)
    client, broker = _client(catalog, tmp_path)
    async with client:
        wrong = await client.post("/v1/files", content="氏名,住所\r\n".encode("cp932"), headers=CSV)
        cut = await client.post("/v1/files", content=altered, headers=CSV)
        xml = await client.post("/v1/files", content=b"<x/>", headers={"content-type": "application/xml"})
        fine = await client.post("/v1/files", content=body, headers=CSV)
    assert (wrong.status_code, wrong.json()["issues"][0]["code"]) == (422, "R213")
    assert (cut.status_code, cut.json()["issues"][0]["code"]) == (422, "R214")
    assert (xml.status_code, xml.json()["issues"][0]["code"]) == (415, "R220")
    assert (fine.status_code, fine.json()["counts"]["accepted"]) == (200, 1)
    assert len(broker.published) == 1


async def test_without_a_catalog_the_intake_takes_no_files(catalog: Catalog, tmp_path: Path) -> None:
    broker = CapturingBroker()
    intake = IntakeStage(broker, catalog, StateStore(tmp_path / "state.sqlite"), Pseudonymizer(KEY))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=create_intake_app(intake))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        assert (await client.post("/v1/files", content=b"a,b\r\n", headers=CSV)).status_code == 404
