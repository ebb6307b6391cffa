"""`renkei routes check|test|asyncapi`, through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from bus.cli import main
from bus.paths import schemas_dir

SAMPLES = schemas_dir() / "jumin.idou/1/samples/valid"
DESTINATIONS = ("zei", "kokuho", "kaigo", "koki", "nenkin", "fukushi", "togo_oshirase", "togo", "senkyo", "shugaku",
                "fukushi_shinsei", "kaigo_shinsei", "jumin_shinsei")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["routes", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_check_summarises_the_shipped_routes_per_destination() -> None:
    code, out, _ = run("check")
    assert code == 0, out
    assert out.startswith("ok: 23 routes in 12 files, 13 destinations")
    for destination in DESTINATIONS:
        assert f"\n  {destination}  (" in out
    assert "kaigo-insured-and-households → kaigo.jumin  [個人番号: yes (legal basis declared)]" in out
    assert "togo-every-change → togo.jumin  [個人番号: no]" in out
    assert "senkyo-senkyonin-meibo → senkyo.jumin  [個人番号: no]" in out


def test_check_lists_every_problem_as_file_line_message(tmp_path: Path) -> None:
    bad = tmp_path / "kaigo.yaml"
    bad.write_text(
        "routes:\n"
        "  - name: kaigo\n"
        "    destination: kaigo\n"
        "    takes: jumin.idou\n"
        "    when: age >=\n"
        "    projection: kaigo.jumin\n"
        "    legal_bassis: 番号法\n",
        encoding="utf-8",
    )
    code, _, err = run("check", "--dir", str(tmp_path))
    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith(f"{bad}:5: route 'kaigo': condition does not compile")
    assert any(line.startswith(f"{bad}:7: route: unknown key 'legal_bassis'; did you mean 'legal_basis'?")
               for line in lines)
    assert lines[-1] == "2 problem(s); no route was loaded"


def test_test_shows_destinations_reasons_and_projected_xml() -> None:
    code, out, _ = run("test", str(SAMPLES / "shussei.xml"))
    assert code == 0, out
    assert "SHUSSEI (increase) on 2025-05-20, municipality 141003" in out
    assert "✓ togo_oshirase portal-shussei-tetsuzuki: condition is true (reason='SHUSSEI')" in out
    assert "--- togo_oshirase ← portal-shussei-tetsuzuki: togo.oshirase v1; legal basis: none (no 個人番号)" in out
    assert ("· kaigo    kaigo-insured-and-households: condition is false "
            "(age=0, kaigo=false, kaigo_household=false)") in out
    assert "      rule: 介護保険 ← persons aged 40 or over" in out
    assert "--- togo ← togo-every-change: togo.jumin v1; legal basis: none (no 個人番号)" in out
    assert "<AtenaChange xmlns=\"urn:renkei:schema:togo.jumin:1\">" in out
    assert "<title>*" in out and "出生に伴う手続のご案内" not in out  # personal (togo.oshirase): masked


def test_test_json_reports_every_route_and_valid_messages() -> None:
    code, out, _ = run("test", str(SAMPLES / "tennyu.xml"), "--json", "--unmasked")
    assert code == 0
    report = json.loads(out)
    assert report["municipality"] == "131016"
    assert report["context"]["reason"] == "TENNYU"
    assert len(report["routes"]) == 23
    matched = {r["destination"] for r in report["routes"] if r["matched"]}
    # an adult Japanese national's 転入 starts the 3 months of 公職選挙法 第21条: 選挙管理 gets it
    assert matched == {m["destination"] for m in report["messages"]} == {"zei", "kokuho", "nenkin", "togo", "senkyo"}
    assert all(m["valid"] is True for m in report["messages"])
    zei = next(m for m in report["messages"] if m["destination"] == "zei")
    assert "<personal_number>123456789018</personal_number>" in zei["xml"]  # the integrator's own file
    togo = next(m for m in report["messages"] if m["destination"] == "togo")
    assert "123456789018" not in togo["xml"]  # no 個人番号: the route declares no legal basis


def test_test_can_route_as_another_municipality(tmp_path: Path) -> None:
    (tmp_path / "zei.yaml").write_text(
        "routes:\n  - {name: z, destination: zei, takes: jumin.idou, when: 'true', projection: zei.jumin,\n"
        "     legal_basis: 番号法, municipalities: ['141003']}\n",
        encoding="utf-8",
    )
    file = str(SAMPLES / "tennyu.xml")
    _, out, _ = run("test", file, "--dir", str(tmp_path), "--json")
    assert json.loads(out)["messages"] == []
    _, out, _ = run("test", file, "--dir", str(tmp_path), "--json", "--municipality", "141003")
    assert [m["destination"] for m in json.loads(out)["messages"]] == ["zei"]


def test_test_rejects_an_invalid_message_with_its_issues(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_bytes((SAMPLES / "tennyu.xml").read_bytes().replace(b"<reason>TENNYU", b"<reason>TENYU"))
    code, _, err = run("test", str(broken))
    assert code == 1
    assert "R300" in err and "nothing was routed" in err


def test_asyncapi_has_a_channel_per_destination_queue(tmp_path: Path) -> None:
    out_file = tmp_path / "asyncapi.json"
    code, out, _ = run("asyncapi", "--out", str(out_file))
    assert code == 0 and "13 channels" in out
    document = json.loads(out_file.read_text(encoding="utf-8"))
    assert document["asyncapi"] == "2.6.0"
    assert set(document["channels"]) == {f"renkei.dest.{d}" for d in DESTINATIONS}
    kaigo = document["channels"]["renkei.dest.kaigo"]
    assert kaigo["subscribe"]["message"] == {"oneOf": [{"$ref": "#/components/messages/kaigo.jumin.v1"},
                                                        {"$ref": "#/components/messages/shien.jumin.v1"}]}
    assert [r["when"] for r in kaigo["x-renkei-routes"]] == ["age >= 40 || kaigo || kaigo_household", "true"]
    payload = document["components"]["messages"]["kaigo.jumin.v1"]["payload"]
    assert payload["type"] == "record"
    code, text, _ = run("asyncapi")
    assert code == 0 and yaml.safe_load(text)["channels"].keys() == document["channels"].keys()


def test_asyncapi_under_tenancy_names_the_queues_the_bus_publishes_to(tmp_path: Path) -> None:
    """A multi-tenant bus publishes a `zei` route to `renkei.dest.zei-131016` and
    `renkei.dest.zei-271004`, never to `renkei.dest.zei`: the export says the same."""
    config = tmp_path / "renkei.toml"
    lines = ["[bus]", 'municipalities = ["131016", "271004"]', ""]
    for system in ("zei", "kokuho"):
        for code in ("131016", "271004"):
            lines += [f"[destinations.{system}-{code}]", 'transport = "http"', 'url = "http://127.0.0.1:9/m"',
                      f'system = "{system}"', f'municipality = "{code}"', ""]
    config.write_text("\n".join(lines), encoding="utf-8")
    out_file = tmp_path / "asyncapi.json"
    code, out, err = run("asyncapi", "--config", str(config), "--out", str(out_file))
    assert code == 0, out + err
    channels = json.loads(out_file.read_text(encoding="utf-8"))["channels"]
    assert set(channels) == {"renkei.dest.zei-131016", "renkei.dest.zei-271004",
                             "renkei.dest.kokuho-131016", "renkei.dest.kokuho-271004"}
    zei = channels["renkei.dest.zei-131016"]
    assert zei["bindings"]["amqp"]["queue"]["name"] == "renkei.dest.zei-131016"
    assert [r["name"] for r in zei["x-renkei-routes"]] == [r["name"] for r in
                                                           channels["renkei.dest.zei-271004"]["x-renkei-routes"]]
