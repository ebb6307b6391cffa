"""選挙時登録 (公職選挙法 第21条第1項, 第22条): qualifications on the election's 登録基準日, the age
on the 選挙の期日 — a 17-year-old on the 基準日 who reaches 18 by the election day is registered."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from bus.catalog import Catalog
from bus.errors import ConfigError
from bus.paths import schemas_dir
from bus.routing.election import Election, election_registration
from bus.validation.safe_xml import parse_xml

CATALOG = Catalog.load()
ELECTION = Election(reference_date=date(2026, 6, 25), election_day=date(2026, 7, 12))


def _sample(version: int, name: str) -> dict[str, Any]:
    raw = (schemas_dir() / f"jumin.idou/{version}/samples/valid/{name}.xml").read_bytes()
    return copy.deepcopy(CATALOG.get("jumin.idou", version).from_xml(parse_xml(raw)))


TENKYO = _sample(2, "tenkyo")


def person(*, born: date, since: date = date(2010, 1, 1), changed: date = date(2026, 5, 1),
           resident_type: str = "JAPANESE", status: str = "RESIDENT") -> dict[str, Any]:
    """A v2 転居 on `changed` of someone born `born`, a resident since `since`."""
    record = copy.deepcopy(TENKYO)
    record["change"]["effective_date"] = {"text": changed.isoformat(), "reference_date": changed}
    record["birth_date"] = {"text": born.isoformat(), "reference_date": born}
    record["became_resident_date"] = {"text": since.isoformat(), "reference_date": since}
    record["change"]["processed_date"] = record["change"]["notified_date"] = changed
    record["resident_type"], record["resident_status"] = resident_type, status
    return record


@pytest.mark.parametrize(("born", "registered"), [
    (date(2008, 7, 14), False),  # 18th birthday two days after the election: still 17 on 7月12日
    (date(2008, 7, 13), True),  # 18th birthday the day after the election: 18 reached on 7月12日 (民法 第143条)
    (date(2008, 7, 12), True),  # 18th birthday on the election day
    (date(2008, 6, 26), True),  # 18 only after the 登録基準日: still, the age counts on the 期日
])
def test_a_seventeen_year_old_who_reaches_18_by_the_election_day_is_registered(born: date, registered: bool) -> None:
    verdict = election_registration(person(born=born), ELECTION)
    assert verdict.registered is registered, verdict.reasons
    assert any("選挙の期日 2026-07-12" in r for r in verdict.reasons)


@pytest.mark.parametrize(("since", "registered"), [
    (date(2026, 3, 24), True),  # 3 months on 6月24日
    (date(2026, 3, 25), True),  # 3 months on 6月25日, the 登録基準日 itself
    (date(2026, 3, 26), False),  # 3 months only on 6月26日, the day after
])
def test_three_months_on_the_registry_are_counted_to_the_reference_date(since: date, registered: bool) -> None:
    verdict = election_registration(person(born=date(1990, 1, 1), since=since, changed=date(2026, 6, 1)),
                                    ELECTION)
    assert verdict.registered is registered, verdict.reasons


def test_a_move_in_counts_from_its_notification_day() -> None:
    """第21条第1項: for a 転入, from the day of the 届出 (not the day of moving)."""
    record = _sample(1, "tennyu")
    record["birth_date"] = date(1990, 1, 1)
    record["change"]["effective_date"] = date(2026, 3, 20)
    for notified, registered in ((date(2026, 3, 25), True), (date(2026, 3, 26), False)):
        record["change"]["notified_date"] = notified
        assert election_registration(record, ELECTION).registered is registered


@pytest.mark.parametrize(("changes", "why"), [
    ({"resident_type": "FOREIGN"}, "not a 日本国民"),
    ({"status": "TENSHUTSU"}, "not a resident"),
    ({"changed": date(2026, 6, 26)}, "after the 登録基準日"),
])
def test_no_registration_without_nationality_residence_or_the_state_on_the_reference_date(
        changes: dict[str, Any], why: str) -> None:
    verdict = election_registration(person(born=date(1990, 1, 1), **changes), ELECTION)
    assert not verdict.registered and any(why in r for r in verdict.reasons)


def test_a_record_that_does_not_say_since_when_is_assumed_three_months_and_says_so() -> None:
    record = _sample(1, "tenkyo")
    record["birth_date"], record["change"]["effective_date"] = date(1990, 1, 1), date(2026, 5, 1)
    verdict = election_registration(record, ELECTION)
    assert verdict.registered and any("assumed" in r for r in verdict.reasons)


def test_the_reasons_carry_no_date_of_the_person_and_a_reference_date_after_the_election_is_refused() -> None:
    text = " ".join(election_registration(person(born=date(2008, 7, 14), since=date(2026, 3, 26)),
                                          ELECTION).reasons)
    assert "2008" not in text and "2026-03-26" not in text
    with pytest.raises(ConfigError, match="登録基準日"):
        Election(reference_date=date(2026, 7, 13), election_day=date(2026, 7, 12))


def test_the_command_says_for_each_file_whether_and_why(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from bus.cli import main

    young = tmp_path / "young.xml"
    young.write_bytes(CATALOG.get("jumin.idou", 2).to_xml(person(born=date(2008, 7, 13))))
    old = tmp_path / "seventeen.xml"
    old.write_bytes(CATALOG.get("jumin.idou", 2).to_xml(person(born=date(2008, 7, 14))))
    result = CliRunner().invoke(main, ["routes", "election", "--reference-date", "2026-06-25",
                                       "--election-day", "2026-07-12", str(young), str(old)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"✓ {young}: ") and "age 18" in lines[0]
    assert lines[1].startswith(f"· {old}: ") and "not 18 on the 選挙の期日 2026-07-12 (age 17" in lines[1]
    assert lines[-1] == "1 of 2 registered at the 選挙時登録 (登録基準日 2026-06-25, 選挙の期日 2026-07-12)"
