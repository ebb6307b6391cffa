"""Route conditions: CEL (Common Expression Language), compiled once, checked before use.

CEL is evaluated by the `common-expression-language` package (Rust core): no Python code
is ever evaluated. `compile_condition` returns the program and every problem it can find
without a message at hand:

- syntax errors, with the line and column inside the expression;
- names that are not context variables (a typo such as `kokhuo`), with the closest match;
- functions outside CEL's standard library;
- symbols compared with a variable that has a code list (`reason == 'TENYU'`) but are not
  in it: such a condition would silently never match;
- type errors and non-boolean results, found by evaluating on sample contexts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bus.routing.cel_core import engine
from bus.routing.context import CONTEXT_VARIABLES, FUKUHON_ITEMS, GROUPS
from bus.suggest import suggest

__all__ = ["ConditionProblem", "compile_condition", "evaluate", "suggest"]

cel = engine()  # the Rust extension alone (bus.routing.cel_core)

#: Named functions and macros of CEL's standard library (operators are `_x_`, `@in`, ...).
STANDARD_FUNCTIONS = frozenset(
    """size contains startsWith endsWith matches int uint double string bytes bool type dyn
    timestamp duration has exists all exists_one map filter max min lowerAscii upperAscii trim
    replace split join indexOf lastIndexOf substring charAt getFullYear getMonth getDate
    getDayOfMonth getDayOfWeek getDayOfYear getHours getMinutes getSeconds getMilliseconds
    """.split()
)
#: Type names CEL reports as identifiers (`type(age) == int`).
TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)

_COMPREHENSION = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_LITERAL = r"""(?:'([^'\\]*)'|"([^"\\]*)")"""
_CEL_ERROR = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")


@dataclass(frozen=True, slots=True)
class ConditionProblem:
    """What is wrong with a condition; `line` is 1-based inside the expression, if known."""

    message: str
    line: int | None = None


def compile_condition(
    source: str, domains: Mapping[str, Iterable[str]]
) -> tuple[Any | None, list[ConditionProblem]]:
    """Compile a condition and check it. Returns (program or None, problems).

    `domains` maps a code list name (ChangeReason, Sex, ...) to its symbols; "Group" and
    "FukuhonItem" are added here.
    """
    try:
        program = cel.compile(source)
    except ValueError as exc:
        return None, _syntax_problems(str(exc))
    problems: list[ConditionProblem] = []
    refs = program.references()
    bound = set(_COMPREHENSION.findall(source))
    for name in refs.get("variables", []):
        if name in CONTEXT_VARIABLES or name in bound or name in TYPE_NAMES:
            continue
        problems.append(ConditionProblem(
            f"unknown variable {name!r}{suggest(name, CONTEXT_VARIABLES)} "
            f"(conditions may use: {', '.join(CONTEXT_VARIABLES)})",
            _line_of(source, name),
        ))
    for name in refs.get("functions", []):
        if name[:1] in "_@!-" or name in STANDARD_FUNCTIONS:
            continue
        problems.append(ConditionProblem(
            f"unknown function {name!r}{suggest(name, STANDARD_FUNCTIONS)} (only CEL's standard functions)",
            _line_of(source, name),
        ))
    problems.extend(_symbol_problems(source, {**{k: tuple(v) for k, v in domains.items()},
                                              "Group": GROUPS, "FukuhonItem": FUKUHON_ITEMS}))
    if not problems:
        problems.extend(_probe(program))
    return (program if not problems else None), problems


def evaluate(program: Any, activation: Any) -> bool:
    """Run a compiled condition on a context (a dict or a `cel.Context`); must give a bool."""
    result = program.execute(activation)
    if not isinstance(result, bool):
        raise TypeError(f"the condition gave {type(result).__name__} {result!r}, not true/false")
    return result


def _syntax_problems(text: str) -> list[ConditionProblem]:
    problems: list[ConditionProblem] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _CEL_ERROR.search(line)
        if not match:
            continue
        snippet = [s for s in lines[i + 1 : i + 3] if s.startswith("|")]
        detail = f"{match.group(3)} (column {match.group(2)})"
        if snippet:
            detail += "\n    " + "\n    ".join(snippet)
        problems.append(ConditionProblem(f"condition does not compile: {detail}", int(match.group(1))))
    return problems or [ConditionProblem(f"condition does not compile: {text}")]


def _line_of(source: str, word: str) -> int | None:
    match = re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", source)
    return source.count("\n", 0, match.start()) + 1 if match else None


def _symbol_problems(source: str, domains: Mapping[str, tuple[str, ...]]) -> list[ConditionProblem]:
    """Literals compared with a code-list variable must be symbols of that list."""
    problems: list[ConditionProblem] = []
    for var in CONTEXT_VARIABLES.values():
        symbols = domains.get(var.codelist or "")
        if not symbols:
            continue
        name = re.escape(var.name)
        found: list[tuple[str, int]] = []
        if var.type.startswith("list"):
            patterns = [rf"{_LITERAL}\s+in\s+{name}\b"]
        else:
            patterns = [rf"\b{name}\s*[!=]=\s*{_LITERAL}", rf"{_LITERAL}\s*[!=]=\s*{name}\b"]
        for pattern in patterns:
            for m in re.finditer(pattern, source):
                found.append((m.group(1) if m.group(1) is not None else m.group(2), m.start()))
        if not var.type.startswith("list"):
            for m in re.finditer(rf"\b{name}\s+in\s+\[([^\]]*)\]", source):
                for lit in re.finditer(_LITERAL, m.group(1)):
                    value = lit.group(1) if lit.group(1) is not None else lit.group(2)
                    found.append((value, m.start()))
        for value, at in found:
            if value not in symbols:
                problems.append(ConditionProblem(
                    f"{value!r} is not a value of {var.name} ({var.codelist}), so it would never match"
                    f"{suggest(value, symbols)}",
                    source.count("\n", 0, at) + 1,
                ))
    return problems


def _probe_contexts() -> list[dict[str, Any]]:
    base: dict[str, Any] = {
        "reason": "TENNYU", "group": "increase", "age": 40, "age_on_processed": 40,
        "effective_date": "2025-04-01", "processed_date": "2025-04-01",
        "resident_type": "JAPANESE", "resident_status": "RESIDENT", "relationship": "SETAINUSHI",
        "sex": "FEMALE", "kokuho": False, "kokuho_household": False, "kaigo": False, "koki": False,
        "nenkin_category": "NONE", "jido_teate": False, "welfare": False, "has_personal_number": True,
        "municipality": "131016", "changed": ["address", "name"],
        "age_at_fiscal_year_start": 39, "age_by_birthday": 39,
    }
    defaults = {"int": 0, "string": "", "bool": False, "list(string)": []}
    for var in CONTEXT_VARIABLES.values():  # a variable added later is probed with its type's zero
        base.setdefault(var.name, defaults.get(var.type))
    flipped = {**base, "reason": "SHIBOU", "group": "decrease", "age": 10, "age_on_processed": 10,
               "age_at_fiscal_year_start": 9, "age_by_birthday": 9,
               "kokuho": True, "kokuho_household": True, "kaigo": True, "koki": True, "jido_teate": True,
               "welfare": True, "has_personal_number": False, "changed": [],
               "koki_disability_certified": True, "kaigo_household": True}
    return [base, flipped]


def _probe(program: Any) -> list[ConditionProblem]:
    """Evaluate on sample contexts: catches type errors (`age > '40'`) and non-boolean results."""
    for activation in _probe_contexts():
        try:
            evaluate(program, activation)
        except (TypeError, ValueError, RuntimeError) as exc:
            first = str(exc).split(". ", 1)[0]
            return [ConditionProblem(f"condition fails on a sample message: {first}")]
    return []
