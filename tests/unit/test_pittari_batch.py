"""ぴったりサービス batches (issue 12 item 3): the applications a municipality downloads as files
(a zip or a directory, one folder per application with its attachments) become one
pittari.shinsei message each, routed to the system of its 手続; a hostile archive is refused
whole; a bad application is reported by file while the others go on; a resend is a duplicate."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import KEY, CapturingBroker

from adapters.sources.directory import DirectorySource
from adapters.sources.pittari import BatchLimits, take_pittari
from bus.catalog import Catalog
from bus.masking import Pseudonymizer
from bus.paths import routes_dir, schemas_dir
from bus.ports import Submission
from bus.routing import RouteTable
from bus.stages import IntakeStage
from bus.state import StateStore
from bus.validation.safe_xml import parse_xml

CATALOG = Catalog.load()
FORM = (schemas_dir() / "portal.shinsei/1/samples/valid/jidoteate_nintei.xml").read_bytes()
PDF = b"%PDF-1.4 a scanned card\n" * 40
CSV_FORM = "\r\n".join([
    "項目,値", "application_id,PS-2025-0410-0001", "municipality_code,131016", "procedure_code,TS0001",
    "procedure_name,転出届（マイナンバーカード）", "submitted_at,2025-04-10T08:30:00+09:00",
    "applicant.family_name,高橋", "applicant.given_name,美咲", "applicant.family_name_kana,タカハシ",
    "applicant.given_name_kana,ミサキ", "applicant.birth_date,1990-02-03",
    "applicant.address.postal_code,1010051", "applicant.address.prefecture,東京都",
    "applicant.address.city,千代田区", "applicant.address.town,神田神保町", "applicant.address.banchi,一丁目1番地",
    "moving_to.prefecture,大阪府", "moving_date,2025-04-20", ""]).encode("cp932")


def batch(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


GOOD = {
    "JT0001/PS-2025-0408-7f3a9c21/shinsei.xml": FORM,
    "JT0001/PS-2025-0408-7f3a9c21/attachments/kenkouhoken.pdf": PDF,
    "JT0001/PS-2025-0408-7f3a9c21/attachments/tsuchou.jpg": b"\xff\xd8\xff\xe0 jpeg",
    "TS0001/PS-2025-0410-0001/shinsei.csv": CSV_FORM,
}


class Bus:
    """The real intake (in-memory broker), and the shipped routes over what it accepted."""

    def __init__(self, tmp_path: Path) -> None:
        self.broker = CapturingBroker()
        self.intake = IntakeStage(self.broker, CATALOG, StateStore(tmp_path / "intake.sqlite"),  # type: ignore[arg-type]
                                  Pseudonymizer(KEY))
        self.table = RouteTable.load(routes_dir(), CATALOG)

    async def submit(self, raw: bytes, content_type: str, kind: str | None) -> Submission:
        return await self.intake.submit(raw, content_type=content_type, source="pittari", kind=kind)

    def routed(self) -> dict[str, dict[str, Any]]:
        """destination → the record it gets, for each accepted application."""
        ks = CATALOG.get("pittari.shinsei")
        out = {}
        for _, message in self.broker.published:
            record = ks.from_xml(parse_xml(message.body))
            for match in self.table.route(record, record["municipality_code"], kind="pittari.shinsei"):
                out[match.route.destination] = match.record
        return out


async def test_each_application_of_a_zip_batch_reaches_the_system_of_its_procedure(tmp_path: Path) -> None:
    bus = Bus(tmp_path)
    (tmp_path / "batch.zip").write_bytes(batch(GOOD))
    status, counts, detail = await take_pittari(tmp_path / "batch.zip", bus.submit, CATALOG)
    assert (status, counts, detail["applications"]) == ("processed", {"accepted": 2, "duplicate": 0,
                                                                      "rejected": 0}, 2)
    routed = bus.routed()
    assert set(routed) == {"fukushi_shinsei", "jumin_shinsei"}  # 児童手当 認定請求, 転出届
    jt = routed["fukushi_shinsei"]
    assert [(a["file_name"], a["media_type"], a["size"]) for a in jt["attachments"]] == [
        ("kenkouhoken.pdf", "application/pdf", len(PDF)), ("tsuchou.jpg", "image/jpeg", 9)]
    assert jt["attachments"][0]["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert jt["applicant"]["personal_number"]  # the 児童手当 事務's legal basis is declared
    ts = routed["jumin_shinsei"]
    assert ts["applicant"]["family_name"] == "高橋" and ts["attachments"] == []  # the CP932 CSV form
    assert {"key": "moving_date", "value": "2025-04-20"} in ts["items"]


async def test_the_same_batch_taken_again_is_a_duplicate_application_by_application(tmp_path: Path) -> None:
    bus = Bus(tmp_path)
    (tmp_path / "batch.zip").write_bytes(batch(GOOD))
    await take_pittari(tmp_path / "batch.zip", bus.submit, CATALOG)
    status, counts, _ = await take_pittari(tmp_path / "batch.zip", bus.submit, CATALOG)
    assert (status, counts) == ("processed", {"accepted": 0, "duplicate": 2, "rejected": 0})
    assert len(bus.broker.published) == 2


async def test_a_directory_batch_is_taken_like_a_zip(tmp_path: Path) -> None:
    bus = Bus(tmp_path)
    for name, data in GOOD.items():
        (tmp_path / "dl" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dl" / name).write_bytes(data)
    status, counts, _ = await take_pittari(tmp_path / "dl", bus.submit, CATALOG)
    assert (status, counts["accepted"]) == ("processed", 2)
    assert set(bus.routed()) == {"fukushi_shinsei", "jumin_shinsei"}


def _refusal(detail: dict[str, Any]) -> str:
    [issue] = detail["issues"]
    assert issue["code"] == "R231"
    return str(issue["message"])


@pytest.mark.parametrize(("name", "what"), [
    ("../../etc/cron.d/x.xml", "'..' component"), ("/etc/passwd", "absolute"), ("C:/Windows/x.pdf", "absolute"),
])
async def test_a_path_traversal_refuses_the_whole_batch_before_anything_is_submitted(
        tmp_path: Path, name: str, what: str) -> None:
    bus = Bus(tmp_path)
    (tmp_path / "batch.zip").write_bytes(batch({**GOOD, name: b"x"}))
    status, counts, detail = await take_pittari(tmp_path / "batch.zip", bus.submit, CATALOG)
    assert status == "rejected" and counts["accepted"] == 0 and bus.broker.published == []
    assert what in _refusal(detail) and "entry 5" in _refusal(detail)


async def test_a_zip_bomb_is_refused(tmp_path: Path) -> None:
    bus = Bus(tmp_path)
    (tmp_path / "bomb.zip").write_bytes(batch({**GOOD, "JT0001/PS-2025-0408-7f3a9c21/big.pdf": bytes(8 << 20)}))
    status, _, detail = await take_pittari(tmp_path / "bomb.zip", bus.submit, CATALOG)
    assert status == "rejected" and bus.broker.published == []
    assert "zip bomb" in _refusal(detail)


async def test_an_entry_over_the_size_bound_is_refused_counting_the_bytes_not_the_header(tmp_path: Path) -> None:
    (tmp_path / "b.zip").write_bytes(batch(GOOD))
    limits = BatchLimits(max_file_size=100)
    status, _, detail = await take_pittari(tmp_path / "b.zip", Bus(tmp_path).submit, CATALOG, limits=limits)
    assert status == "rejected" and "larger than 100 bytes" in _refusal(detail)


async def test_a_symbolic_link_in_a_zip_or_a_directory_batch_is_refused(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        link = zipfile.ZipInfo("JT0001/PS-1/shinsei.xml")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    (tmp_path / "l.zip").write_bytes(out.getvalue())
    status, _, detail = await take_pittari(tmp_path / "l.zip", Bus(tmp_path).submit, CATALOG)
    assert status == "rejected" and "symbolic link" in _refusal(detail)
    folder = tmp_path / "dl" / "PS-1"
    folder.mkdir(parents=True)
    (folder / "shinsei.xml").write_bytes(FORM)
    os.symlink("/etc/passwd", folder / "passwd.txt")
    status, _, detail = await take_pittari(tmp_path / "dl", Bus(tmp_path).submit, CATALOG)
    assert status == "rejected" and "symbolic link" in _refusal(detail)


async def test_a_bad_application_is_reported_by_file_while_the_others_go_on(tmp_path: Path) -> None:
    bus = Bus(tmp_path)
    broken = FORM.replace(b"<procedure_code>JT0001</procedure_code>", b"")
    bad_csv = CSV_FORM.replace(b"2025-04-10T08:30:00+09:00", "4月10日".encode("cp932"))
    (tmp_path / "b.zip").write_bytes(batch({
        **GOOD,
        "JT0001/PS-9/shinsei.xml": broken,
        "TS0001/PS-8/shinsei.csv": bad_csv.replace(b"PS-2025-0410-0001", b"PS-8"),
        "TS0001/PS-7/shinsei.csv": CSV_FORM.replace(b"PS-2025-0410-0001", b"PS-7"),
        "TS0001/PS-7/virus.exe": b"MZ",
        "loose.pdf": PDF,
    }))
    status, counts, detail = await take_pittari(tmp_path / "b.zip", bus.submit, CATALOG)
    assert status == "rejected" and counts == {"accepted": 2, "duplicate": 0, "rejected": 3}
    by_file = {p["file"]: [i["code"] + " " + i["message"] + " " + i.get("path", "") for i in p["issues"]]
               for p in detail["rejected_files"]}
    [form] = by_file["entry 5 (JT0001/PS-9/shinsei.xml)"]  # the validator's issue, with its path
    assert form.startswith("R300 ") and form.endswith("/Shinsei/procedure_name")
    [csv_issue] = by_file["entry 6 (TS0001/PS-8/shinsei.csv)"]
    assert "row 6 (submitted_at)" in csv_issue and "4月10日" not in csv_issue
    [exe] = by_file["entry 7 (TS0001/PS-7/shinsei.csv)"]
    assert "entry 8 (TS0001/PS-7/virus.exe)" in exe and "type not taken (.exe" in exe
    [loose] = by_file["entry 9 (loose.pdf)"]
    assert "not in any application folder" in loose


async def test_a_japanese_file_name_is_withheld_from_messages(tmp_path: Path) -> None:
    """A file name may hold a person's name: a message names a non-ASCII entry by number only."""
    (tmp_path / "j.zip").write_bytes(batch({"PS-1/shinsei.xml": FORM, "PS-1/佐藤健一の保険証.exe": b"MZ"}))
    _, _, detail = await take_pittari(tmp_path / "j.zip", Bus(tmp_path).submit, CATALOG)
    text = json.dumps(detail, ensure_ascii=False)
    assert "佐藤" not in text and "entry 2 (name withheld: not plain ASCII)" in text


def test_an_entry_name_without_the_utf8_flag_is_read_as_cp932() -> None:
    """Japanese Windows archivers write CP932 names without the UTF-8 flag (zipfile reads cp437)."""
    from adapters.sources.pittari import _zip_name

    info = zipfile.ZipInfo("保険証.pdf".encode("cp932").decode("cp437"))
    info.flag_bits = 0
    assert _zip_name(info) == "保険証.pdf"
    flagged = zipfile.ZipInfo("保険証.pdf")
    flagged.flag_bits = 0x800
    assert _zip_name(flagged) == "保険証.pdf"


async def test_the_inbox_takes_a_zip_as_a_batch_and_files_the_result(tmp_path: Path) -> None:
    bus = Bus(tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "pittari-20250410.zip").write_bytes(batch(GOOD))
    source = DirectorySource(inbox, bus.intake, pattern=("*.zip",), source="pittari", catalog=CATALOG)
    [result] = await source.run_once()
    assert (result.status, result.counts["accepted"]) == ("processed", 2)
    filed = json.loads(next((inbox / "processed").glob("*.result.json")).read_text(encoding="utf-8"))
    assert filed["kind"] == "pittari.shinsei" and filed["applications"] == 2


async def test_the_system_of_the_procedure_takes_the_application_it_is_routed(tmp_path: Path) -> None:
    """The 申請 interface's simulator (kind pittari.shinsei) applies what the route sends it."""
    import httpx

    from adapters.simulators import create_app

    bus = Bus(tmp_path)
    (tmp_path / "batch.zip").write_bytes(batch(GOOD))
    await take_pittari(tmp_path / "batch.zip", bus.submit, CATALOG)
    record = bus.routed()["fukushi_shinsei"]
    app = create_app("fukushi_shinsei", catalog=CATALOG)
    headers = {"Content-Type": "application/xml", "Idempotency-Key": "a1.fukushi_shinsei",
               "X-Renkei-Kind": "pittari.shinsei"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        answer = await client.post("/messages", content=CATALOG.get("pittari.shinsei").to_xml(record),
                                   headers=headers)
    assert answer.json()["status"] == "applied", answer.text
