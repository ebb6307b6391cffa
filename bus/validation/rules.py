"""Rules the schema cannot say (DESIGN §3 step 4): check digits, date order, code lists and
cross-field rules, for jumin.idou and every kind that shares its field names.

Rules are data: each names the field paths it reads, and applies to a kind only when the kind
has all of them (a projection without ``moved_out_to`` is not asked for one). Every rule is
documented with its code in docs/error-codes.md. All issues are collected; none stops the rest.

    rules = rules_for(kind_schema)      # compiled once per kind and version, cached
    issues = rules.check(record)        # [] when the record passes
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from bus.catalog.codelists import CodeLists
from bus.catalog.spec import Field, iter_leaves
from bus.masking import is_personal, mask_value
from bus.validation import checkdigits
from bus.validation.issues import Issue
from bus.validation.rules_v2 import standard_rules

__all__ = ["ISO_3166_ALPHA2", "RuleSet", "check_rules", "personal_predicate", "rules_for"]

# ISO 3166-1 alpha-2 (249 codes), plus the user-assigned XX for 無国籍 / unknown nationality.
ISO_3166_ALPHA2: frozenset[str] = frozenset(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT
    BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER
    ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID
    IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV
    LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR
    NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC
    VE VG VI VN VU WF WS YE YT ZA ZM ZW XX""".split()
)

#: leaf name → (code, validity test, Japanese name, expected)
CHECK_DIGITS: dict[str, tuple[str, Callable[[object], bool], str, str]] = {
    "personal_number": ("R401", checkdigits.is_valid_personal_number, "個人番号",
                        "12 digits with a valid check digit"),
    "municipality_code": ("R402", checkdigits.is_valid_municipality_code, "地方公共団体コード",
                          "6 digits with a valid check digit"),
    "resident_code": ("R403", checkdigits.is_valid_resident_code, "住民票コード",
                      "11 digits with a valid check digit"),
}
#: string-coded fields (not Avro enums) → (allowed values, what they are)
STRING_CODES: dict[str, tuple[frozenset[str], str]] = {
    "nationality": (ISO_3166_ALPHA2, "an ISO 3166-1 alpha-2 country code (XX: stateless/unknown)"),
    "moved_out_country": (ISO_3166_ALPHA2, "an ISO 3166-1 alpha-2 country code"),
    "country": (ISO_3166_ALPHA2, "an ISO 3166-1 alpha-2 country code"),
}
#: 転出 may be notified and processed before it takes effect (転出予定).
ADVANCE_NOTICE = frozenset({"TENSHUTSU", "KOKUGAI_TENSHUTSU"})
#: change reason → (field path it requires, Japanese name, source kind only?)
REQUIRED_BY_REASON: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "TENSHUTSU": (("moved_out_to", "転出先住所", False),),
    "KOKUGAI_TENSHUTSU": (("moved_out_country", "転出先国", False),),
    "TENNYU": (("previous_address", "前住所", False),),
    "TORIKESHI": (("change/cancelled_history_number", "取消対象履歴番号", False),),
    "KOJIN_BANGO_HENKO": (("personal_number", "個人番号", True),),
    "JUMINHYO_CODE_HENKO": (("resident_code", "住民票コード", True),),
}
#: the kind that holds every item; projections may legitimately omit some (data minimisation)
SOURCE_KIND = "jumin.idou"
#: change reason group → the resident statuses the snapshot may show after the change (v1, v2)
STATUS_BY_GROUP = {"increase": ("RESIDENT",), "decrease": ("REMOVED", "TENSHUTSU", "SHIBOU", "SHOJO")}

_Finding = tuple[str, str, str, Any, str]  # code, path, message, value, expected
_Findings = Sequence[_Finding]
_Check = Callable[[Mapping[str, Any]], _Findings]
_OK: _Findings = ()


class _KindLike(Protocol):
    kind: str
    version: int
    root_element: str

    @property
    def fields(self) -> tuple[Field, ...]: ...


def _get(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("/"):
        if value.__class__ is not dict and not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _values(record: Any, parts: tuple[str, ...], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(concrete path, value) at a spec path whose list segments end in ``[]``."""
    if not parts:
        yield prefix, record
        return
    if not isinstance(record, Mapping):
        return
    head, rest = parts[0], parts[1:]
    if head.endswith("[]"):
        items = record.get(head[:-2])
        for i, item in enumerate(items if isinstance(items, list | tuple) else ()):
            yield from _values(item, rest, f"{prefix}{head[:-2]}[{i}]/")
    else:
        value = record.get(head)
        if value is not None:
            yield from _values(value, rest, f"{prefix}{head}" + ("/" if rest else ""))


_XML_LIST_INDEX = re.compile(r"/item\[\d+\]")
_LIST_INDEX = re.compile(r"\[\d*\]")


def canonical_path(path: str) -> str:
    """One spelling for a field path in any form, without the root element:
    ``/Root/items/item[2]/value`` (XML), ``/Root/items[1]/value`` (record) and ``items[]/value``
    (spec) all become ``items/item/value``."""
    path = _LIST_INDEX.sub("/item", _XML_LIST_INDEX.sub("/item", path))
    return path.split("/", 2)[2] if path.startswith("/") and path.count("/") >= 2 else path.lstrip("/")


def personal_predicate(fields: tuple[Field, ...]) -> Callable[[str], bool]:
    """`personal(path)`: bus.masking.is_personal, or a field the kind's spec marks personal, or
    inside a record it marks personal (v2's birth_date/text)."""
    marked = frozenset(canonical_path(p) for p, f in iter_leaves(fields)
                       if f.personal or (f.item is not None and f.item.personal))

    def personal(path: str) -> bool:
        canon = canonical_path(path)
        return is_personal(path) or canon in marked or any(canon.startswith(f"{m}/") for m in marked)

    return personal


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules that apply to one kind, compiled from its fields; `personal` decides masking."""

    kind: str
    root: str
    checks: tuple[_Check, ...]
    personal: Callable[[str], bool] = is_personal

    def check(self, record: Mapping[str, Any]) -> list[Issue]:
        """Every rule issue of `record` (already schema-valid), in rule order."""
        out: list[Issue] = []
        for check in self.checks:
            found = check(record)
            if found:
                for code, path, message, value, expected in found:
                    full = f"/{self.root}/{path}"
                    masked = value is not None and self.personal(full)
                    shown = None if value is None else mask_value(value) if masked else str(value)
                    out.append(Issue(code, message, path=full, value=shown, expected=expected))
        return out


def _field_rule(path: str, test: Callable[[Any], bool], finding: Callable[[str, Any], _Finding]) -> _Check:
    """A rule on the value(s) at one spec path: `test(value)` False → `finding(path, value)`."""
    if "[]" not in path:
        parts = tuple(path.split("/"))
        if len(parts) == 1:
            key = parts[0]

            def top(record: Mapping[str, Any]) -> _Findings:
                value = record.get(key)
                return _OK if value is None or test(value) else [finding(path, value)]

            return top

        def nested(record: Mapping[str, Any]) -> _Findings:
            value = _get(record, path)
            return _OK if value is None or test(value) else [finding(path, value)]

        return nested
    list_parts = tuple(path.split("/"))

    def in_lists(record: Mapping[str, Any]) -> _Findings:
        return [finding(where, v) for where, v in _values(record, list_parts) if not test(v)]

    return in_lists


def _check_digit_rule(path: str, leaf: str) -> _Check:
    code, valid, name_ja, expected = CHECK_DIGITS[leaf]
    message = f"{name_ja} ({leaf}) check digit is wrong"
    return _field_rule(path, valid, lambda where, value: (code, where, message, value, expected))


def _string_code_rule(path: str, leaf: str) -> _Check:
    allowed, what = STRING_CODES[leaf]
    message = f"{leaf} is not a known code"
    return _field_rule(path, allowed.__contains__, lambda where, value: ("R420", where, message, value, what))


def _date_rules() -> Iterator[tuple[tuple[str, ...], _Check]]:
    def processed_after_effective(r: Mapping[str, Any]) -> _Findings:
        change = r["change"]
        eff, proc = change.get("effective_date"), change.get("processed_date")
        if isinstance(eff, date) and isinstance(proc, date) and proc < eff and (
            change.get("reason") not in ADVANCE_NOTICE
        ):
            return [("R410", "change/processed_date",
                     f"処理日 (processed_date) is before 異動日 (effective_date) {eff.isoformat()}; "
                     "only 転出 / 国外転出 may be processed in advance", proc.isoformat(),
                     f"on or after {eff.isoformat()}")]
        return _OK

    def notified_before_processed(r: Mapping[str, Any]) -> _Findings:
        change = r["change"]
        notified, proc = change.get("notified_date"), change.get("processed_date")
        if isinstance(notified, date) and isinstance(proc, date) and notified > proc:
            return [("R410", "change/notified_date",
                     f"届出日 (notified_date) is after 処理日 (processed_date) {proc.isoformat()}",
                     notified.isoformat(), f"on or before {proc.isoformat()}")]
        return _OK

    def born_before_effective(r: Mapping[str, Any]) -> _Findings:
        birth, eff = r.get("birth_date"), r["change"].get("effective_date")
        if isinstance(birth, date) and isinstance(eff, date):
            if birth > eff:
                return [("R410", "birth_date", "生年月日 (birth_date) is after 異動日 (effective_date)",
                         birth, "on or before change/effective_date")]
            if birth != eff and r["change"].get("reason") == "SHUSSEI":
                return [("R410", "change/effective_date",
                         "出生 (SHUSSEI): 異動日 (effective_date) must be the birth date",
                         eff.isoformat(), "equal to birth_date")]
        return _OK

    yield ("change/effective_date", "change/processed_date"), processed_after_effective
    yield ("change/notified_date", "change/processed_date"), notified_before_processed
    yield ("birth_date", "change/effective_date"), born_before_effective


def _required_by_reason(kind: str, leaves: Mapping[str, Field]) -> _Check | None:
    table = {
        reason: tuple((path, name_ja) for path, name_ja, source_only in required
                      if path in leaves and (kind == SOURCE_KIND or not source_only))
        for reason, required in REQUIRED_BY_REASON.items()
    }
    table = {reason: required for reason, required in table.items() if required}
    if not table or "change/reason" not in leaves:
        return None

    def needs(r: Mapping[str, Any]) -> _Findings:
        reason = r["change"].get("reason")
        required = table.get(reason)
        if required is None:
            return _OK
        return [("R430", path, f"{reason} needs {path.rsplit('/', 1)[-1]} ({name_ja})", None, "a value")
                for path, name_ja in required if _get(r, path) is None]

    return needs


def _reason_rules(codelists: CodeLists) -> Iterator[tuple[tuple[str, ...], _Check]]:
    def cancelled(r: Mapping[str, Any]) -> _Findings:
        target, reason = r["change"].get("cancelled_history_number"), r["change"].get("reason")
        if target is None:
            return _OK
        if not str(reason).startswith("TORIKESHI"):
            return [("R430", "change/cancelled_history_number",
                     "取消対象履歴番号 (cancelled_history_number) is only for TORIKESHI* (異動の取消し)",
                     target, "absent unless reason is TORIKESHI")]
        history = r.get("history_number")
        if isinstance(history, int) and target >= history:
            return [("R430", "change/cancelled_history_number",
                     f"TORIKESHI must cancel an earlier change than history_number {history}",
                     target, f"less than {history}")]
        return _OK

    yield ("change/reason", "change/cancelled_history_number", "history_number"), cancelled

    groups = {s: codelists.group(s) for name in codelists.names() if name.startswith("ChangeReason")
              for s in codelists.symbols(name)}
    wanted_status = {s: STATUS_BY_GROUP[g] for s, g in groups.items() if g in STATUS_BY_GROUP}

    def status(r: Mapping[str, Any]) -> _Findings:
        reason = r["change"].get("reason")
        wanted = wanted_status.get(reason)
        if wanted is not None and r.get("resident_status") not in wanted:
            return [("R430", "resident_status",
                     f"after {reason} ({groups[reason]}) the resident status must be {' or '.join(wanted)}",
                     r.get("resident_status"), " or ".join(wanted))]
        return _OK

    yield ("change/reason", "resident_status"), status

    def abroad(r: Mapping[str, Any]) -> _Findings:
        if r.get("moved_out_country") == "JP" and r["change"].get("reason") == "KOKUGAI_TENSHUTSU":
            return [("R430", "moved_out_country", "国外転出 (KOKUGAI_TENSHUTSU) cannot go to JP", "JP",
                     "a country other than JP")]
        return _OK

    yield ("change/reason", "moved_out_country"), abroad

    def alias_foreign(r: Mapping[str, Any]) -> _Findings:
        if r["change"].get("reason") == "TSUSHO" and r.get("resident_type") != "FOREIGN":
            return [("R430", "resident_type", "通称 (TSUSHO) is recorded only for foreign residents",
                     r.get("resident_type"), "FOREIGN")]
        return _OK

    yield ("change/reason", "resident_type"), alias_foreign


def _person_rules() -> Iterator[tuple[tuple[str, ...], _Check]]:
    def nationality(r: Mapping[str, Any]) -> _Findings:
        rtype, nat = r.get("resident_type"), r.get("nationality")
        if rtype == "FOREIGN" and nat is None:
            return [("R430", "nationality", "a foreign resident (FOREIGN) needs nationality (国籍)", None,
                     "a value")]
        if rtype == "FOREIGN" and nat == "JP":
            return [("R430", "nationality", "a foreign resident (FOREIGN) cannot have nationality JP", nat,
                     "not JP")]
        if rtype == "JAPANESE" and nat not in (None, "JP"):
            return [("R430", "nationality", "a Japanese resident (JAPANESE) has no foreign nationality", nat,
                     "absent or JP")]
        return _OK

    def names(r: Mapping[str, Any]) -> _Findings:
        name = r.get("name")
        if not name:
            return _OK
        out: list[_Finding] = []
        if name.get("alias_name") is not None and r.get("resident_type") != "FOREIGN":
            out.append(("R430", "name/alias_name", "通称 (alias_name) is recorded only for foreign residents",
                        None, "absent for JAPANESE residents"))
        for kana, base, name_ja in _KANA_PAIRS:
            if name.get(kana) is not None and name.get(base) is None:
                out.append(("R430", f"name/{kana}", f"{kana} needs {base} ({name_ja})", None, f"name/{base}"))
        return out

    def insurance(r: Mapping[str, Any]) -> _Findings:
        ins = r.get("insurance")
        if not ins or not ins.get("kokuho"):
            return _OK
        out: list[_Finding] = []
        if not ins.get("kokuho_household"):
            out.append(("R430", "insurance/kokuho_household",
                        "a 国民健康保険 insured person (kokuho) belongs to a 国保世帯 (kokuho_household)",
                        False, "true"))
        if ins.get("koki"):
            out.append(("R430", "insurance/koki",
                        "後期高齢者医療 (koki) and 国民健康保険 (kokuho) cannot both be true", True,
                        "at most one of kokuho, koki"))
        return out

    yield ("resident_type", "nationality"), nationality
    yield ("name",), names
    yield ("insurance/kokuho", "insurance/kokuho_household", "insurance/koki"), insurance


_KANA_PAIRS = (("former_family_name_kana", "former_family_name", "旧氏"),
               ("alias_name_kana", "alias_name", "通称"))


def compile_rules(kind: str, root: str, fields: tuple[Field, ...], codelists: CodeLists) -> RuleSet:
    """The RuleSet of a kind with these fields (root: the XML root / Avro record name)."""
    leaves = dict(iter_leaves(fields))
    checks: list[_Check] = []
    for path in leaves:
        leaf = path.rsplit("/", 1)[-1]
        if leaf in CHECK_DIGITS:
            checks.append(_check_digit_rule(path, leaf))
        elif leaf in STRING_CODES:
            checks.append(_string_code_rule(path, leaf))
    required = _required_by_reason(kind, leaves)
    if required is not None:
        checks.append(required)
    for needs, check in (*_date_rules(), *_reason_rules(codelists), *_person_rules(), *standard_rules()):
        if all(p in leaves for p in needs):
            checks.append(check)
    return RuleSet(kind, root, tuple(checks), personal_predicate(fields))


_cache: dict[tuple[str, int], RuleSet] = {}
_codelists: list[CodeLists] = []


def rules_for(ks: _KindLike, codelists: CodeLists | None = None) -> RuleSet:
    """The cached RuleSet of a KindSchema (bus.catalog)."""
    key = (ks.kind, ks.version)
    rules = _cache.get(key)
    if rules is None:
        if codelists is None:
            if not _codelists:
                _codelists.append(CodeLists.load())
            codelists = _codelists[0]
        rules = _cache[key] = compile_rules(ks.kind, ks.root_element, ks.fields, codelists)
    return rules


def check_rules(ks: _KindLike, record: Mapping[str, Any]) -> list[Issue]:
    """Every rule issue of `record` of kind `ks`."""
    return rules_for(ks).check(record)
