"""Route files are checked completely at load, and every problem cites file:line."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from bus.catalog import Catalog
from bus.errors import ConfigError, RouteErrors
from bus.paths import routes_dir, schemas_dir
from bus.routing.loader import check_routes, load_routes

DESTINATIONS = {"zei", "kokuho", "kaigo", "koki", "nenkin", "fukushi", "togo_oshirase", "togo", "senkyo", "shugaku",
                "fukushi_shinsei", "kaigo_shinsei", "jumin_shinsei"}

BASIS = "番号法 第9条第1項 別表第一 第68項"
GOOD = f"""\
routes:
  - name: kaigo-age40
    destination: kaigo
    takes: jumin.idou
    when: age >= 40
    projection: kaigo.jumin
    legal_basis: {BASIS}
    description: 介護保険
"""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(directory: Path, catalog: Catalog) -> list[ConfigError]:
    _, errors = check_routes(directory, catalog)
    return errors


def only(errors: list[ConfigError]) -> ConfigError:
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def test_every_shipped_route_loads(catalog: Catalog) -> None:
    routes = load_routes(routes_dir(), catalog)
    assert {r.destination for r in routes} == DESTINATIONS
    for route in routes:
        assert route.program is not None
        assert route.description
        file, line = route.where.rsplit(":", 1)
        assert file.endswith(".yaml") and int(line) >= 1
        no_number = ("chukan", "portal", "togo", "togo_oshirase", "senkyo", "shugaku")  # no 個人番号利用事務
        if route.destination in no_number or route.takes == "jumin.shien":  # a 支援措置 carries no 個人番号
            assert route.legal_basis is None, route.name
        else:
            assert route.legal_basis and route.legal_basis.startswith("番号法"), route.name


def test_a_good_file_loads_with_its_location(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, "kaigo.yaml", GOOD)
    [route] = load_routes(tmp_path, catalog)
    assert route.name == "kaigo-age40"
    assert route.queue == "renkei.dest.kaigo"
    assert route.where == f"{path}:2"
    assert route.may_carry_personal_number


def test_a_typo_in_a_key_names_the_key_the_line_and_the_closest_key(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, "kokuho.yaml", GOOD.replace("    destination: kaigo", "    destinaton: kaigo"))
    errors = problems(tmp_path, catalog)
    typo = [e for e in errors if "unknown key" in str(e)]
    assert len(typo) == 1
    assert typo[0].where == f"{path}:3"
    assert "'destinaton'" in str(typo[0]) and "did you mean 'destination'" in str(typo[0])
    missing = [e for e in errors if "missing required key 'destination'" in str(e)]
    assert missing and missing[0].where == f"{path}:2"


def test_a_cel_syntax_error_cites_the_line_of_the_condition(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, "kaigo.yaml", GOOD.replace("when: age >= 40", "when: age >= "))
    error = only(problems(tmp_path, catalog))
    assert error.where == f"{path}:5"
    assert "does not compile" in str(error) and "Syntax error" in str(error)


def test_an_error_in_a_block_condition_cites_the_line_inside_the_block(
    tmp_path: Path, catalog: Catalog
) -> None:
    text = GOOD.replace("    when: age >= 40\n", "    when: |\n      age >= 40\n      && kokhuo\n")
    path = write(tmp_path, "kaigo.yaml", text)
    error = only(problems(tmp_path, catalog))
    assert error.where == f"{path}:7"
    assert "unknown variable 'kokhuo'" in str(error) and "did you mean 'kokuho'" in str(error)


def test_a_condition_cannot_see_personal_data(tmp_path: Path, catalog: Catalog) -> None:
    write(tmp_path, "kaigo.yaml", GOOD.replace("when: age >= 40", "when: birth_date < '1985-01-01'"))
    error = only(problems(tmp_path, catalog))
    assert "unknown variable 'birth_date'" in str(error)


def test_an_unknown_reason_symbol_would_never_match_and_is_an_error(tmp_path: Path, catalog: Catalog) -> None:
    text = GOOD.replace("when: age >= 40", "when: reason in ['TENYU', 'SHUSSEI']")
    path = write(tmp_path, "kaigo.yaml", text)
    error = only(problems(tmp_path, catalog))
    assert error.where == f"{path}:5"
    assert "'TENYU' is not a value of reason" in str(error) and "did you mean 'TENNYU'" in str(error)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("age + 1", "not true/false"),
        ("age > '40'", "No such overload"),
        ("lower(reason) == 'x'", "unknown function 'lower'"),
        ("sex == 'M'", "'M' is not a value of sex"),
        ("'adress' in changed", "did you mean 'address'"),
    ],
)
def test_conditions_are_checked_before_any_message(tmp_path: Path, catalog: Catalog, condition: str,
                                                   expected: str) -> None:
    write(tmp_path, "kaigo.yaml", GOOD.replace("when: age >= 40", f'when: "{condition}"'))
    assert expected in str(only(problems(tmp_path, catalog)))


def test_an_unknown_kind_is_named_with_the_closest_kind(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, "kaigo.yaml", GOOD.replace("projection: kaigo.jumin", "projection: kaigo.jumn"))
    error = only(problems(tmp_path, catalog))
    assert error.where == f"{path}:6"
    assert "'kaigo.jumn' is not a kind" in str(error) and "did you mean 'kaigo.jumin'" in str(error)


def test_only_resident_changes_can_be_taken(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, "kaigo.yaml", GOOD.replace("takes: jumin.idou", "takes: zei.jumin"))
    error = only(problems(tmp_path, catalog))
    assert error.where == f"{path}:4" and "only jumin.idou" in str(error)


def test_duplicate_route_names_across_files_cite_both_places(tmp_path: Path, catalog: Catalog) -> None:
    first = write(tmp_path, "a.yaml", GOOD)
    second = write(tmp_path, "b.yaml", GOOD)
    error = only(problems(tmp_path, catalog))
    assert error.where == f"{second}:2"
    assert f"first defined at {first}:2" in str(error)


def test_a_tab_in_yaml_is_a_syntax_error_with_its_line(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, "kaigo.yaml", GOOD.replace("    when: age >= 40", "\twhen: age >= 40"))
    error = only(problems(tmp_path, catalog))
    assert error.where == f"{path}:5"
    assert "YAML syntax error" in str(error) and "tabs" in str(error)


def test_a_bad_indent_is_a_syntax_error_with_its_line(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, "kaigo.yaml", GOOD.replace("    takes: jumin.idou", "   takes: jumin.idou"))
    error = only(problems(tmp_path, catalog))
    assert error.where == f"{path}:4"
    assert "YAML syntax error" in str(error)


@pytest.mark.parametrize(
    ("old", "new", "line", "expected"),
    [
        (f"legal_basis: {BASIS}", "legal_basis: ''", 7, "legal_basis must not be empty"),
        ("destination: kaigo", "destination: Kaigo Hoken", 3, "must be a system id"),
        ("name: kaigo-age40", "name: Kaigo Age 40", 2, "name must be lower-case"),
        ("description: 介護保険", "municipalities: ['131017']", 8, "'131017' is not a 地方公共団体コード"),
        ("projection: kaigo.jumin", "projection: {kind: kaigo.jumin, function: kaigo_special}", 6,
         "unknown projection function 'kaigo_special'"),
        ("projection: kaigo.jumin", "projection: {kind: kaigo.jumin, function: chukan_fukuhon}", 6,
         "produces chukan.fukuhon, not kaigo.jumin"),
        ("projection: kaigo.jumin", "projection: chukan.fukuhon", 6, "such a projection needs a function"),
        ("description: 介護保険", "description: 介護保険\n    when: age > 1", 9, "duplicate key 'when'"),
    ],
)
def test_each_value_error_cites_its_line(tmp_path: Path, catalog: Catalog, old: str, new: str, line: int,
                                         expected: str) -> None:
    assert old in GOOD
    path = write(tmp_path, "kaigo.yaml", GOOD.replace(old, new))
    error = only(problems(tmp_path, catalog))
    assert error.where == f"{path}:{line}", str(error)
    assert expected in str(error)


def test_portal_params_are_checked(tmp_path: Path, catalog: Catalog) -> None:
    text = """\
    routes:
      - name: notice
        destination: portal
        takes: jumin.idou
        when: reason == 'SHUSSEI'
        projection:
          kind: portal.oshirase
          function: portal_oshirase
          params: {template: kekkon, valid_days: 0}
    """
    write(tmp_path, "portal.yaml", text)
    messages = [str(e) for e in problems(tmp_path, catalog)]
    assert any("params.template must be one of" in m for m in messages)
    assert any("params.valid_days" in m for m in messages)


def test_errors_of_every_file_are_collected(tmp_path: Path, catalog: Catalog) -> None:
    a = write(tmp_path, "a.yaml", GOOD.replace("when: age >= 40", "when: age >="))
    b = write(tmp_path, "b.yaml", GOOD.replace("kaigo-age40", "other").replace("takes:", "take:"))
    write(tmp_path, "c.yml", GOOD)
    with pytest.raises(RouteErrors) as caught:
        load_routes(tmp_path, catalog)
    wheres = [e.where for e in caught.value.errors]
    assert f"{a}:5" in wheres and f"{b}:4" in wheres
    assert any(w and w.endswith("c.yml") for w in wheres)
    assert len(caught.value) == len(wheres) >= 4
    assert isinstance(caught.value, ConfigError)


def test_a_file_must_hold_a_routes_list(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, "x.yaml", "- name: a\n")
    error = only(problems(tmp_path, catalog))
    assert error.where == f"{path}:1" and "a mapping with a 'routes' list" in str(error)


def test_an_empty_or_missing_directory_is_an_error(tmp_path: Path, catalog: Catalog) -> None:
    assert "no route files" in str(only(problems(tmp_path, catalog)))
    assert "does not exist" in str(only(problems(tmp_path / "nope", catalog)))


def test_a_target_requiring_the_personal_number_needs_a_legal_basis(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), schemas)
    spec = schemas / "kaigo.jumin/1/fields.yaml"
    text = spec.read_text(encoding="utf-8")
    marker = "{name: personal_number, type: string, optional: true,"
    assert marker in text
    spec.write_text(text.replace(marker, "{name: personal_number, type: string,"), encoding="utf-8")
    catalog = Catalog.load(root=schemas)
    routes = tmp_path / "routes"
    routes.mkdir()
    path = write(routes, "kaigo.yaml", GOOD.replace(f"    legal_basis: {BASIS}\n", ""))
    error = only(problems(routes, catalog))
    assert error.where == f"{path}:6"
    assert "requires personal_number" in str(error) and "legal_basis" in str(error)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "routes.md"


def test_the_docs_describe_every_variable_and_every_shipped_route(catalog: Catalog) -> None:
    from bus.routing.context import CONTEXT_VARIABLES

    text = DOCS.read_text(encoding="utf-8")
    for name in CONTEXT_VARIABLES:
        assert f"| `{name}` |" in text, name
    for route in load_routes(routes_dir(), catalog):
        assert f"| {route.name} |" in text, route.name


def test_the_example_route_file_of_the_docs_loads(tmp_path: Path, catalog: Catalog) -> None:
    text = DOCS.read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.yaml").write_text(example, encoding="utf-8")
    [route] = load_routes(tmp_path, catalog)
    assert route.municipalities == frozenset({"131016"})
