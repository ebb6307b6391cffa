"""No plaintext personal data in the trail: a cheap check of every event at append time.

The trail names a person only by the `subject` pseudonym. What can be caught cheaply is
caught here, before anything is written:

- `subject` must be a pseudonym (32 lowercase hex characters, as Pseudonymizer.subject makes);
  a number of 1–15 digits there is a raw 宛名番号;
- identifiers (message_id, municipality, kind, source, destination, route, projection, codes,
  actor) must be short tokens; message_id, source, destination, route and actor must not be
  all digits (a raw 宛名番号 put in the wrong field);
- no identifier may hold a 12-digit number with a valid 個人番号 check digit, nor an 11-digit
  one with a valid 住民票コード check digit. A hex message_id is exempt (a random hex id has
  such a run now and then); in free text (`reason`, `receipt`, `legal_basis`) such a number is
  masked instead, so an exception text quoting a message never stops the pipeline.

A change's one `routed` record (bus.audit.fanout) holds a value per destination, a space apart,
in kind, destination, route and projection, and a JSON list of legal bases: each value is
screened as it would be alone.

Identifier problems raise PersonalDataInAudit: they are bugs in the caller.
Names and addresses cannot be recognised cheaply: free text (`reason`, `receipt`,
`legal_basis`) is for operators' words, status codes and references, never message content.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from bus.audit.events import AuditEvent, EventType
from bus.errors import PersonalDataInAudit
from bus.masking import mask_value

__all__ = ["PersonalDataInAudit", "claimed", "screen"]

_PSEUDONYM = re.compile(r"[0-9a-f]{32}")
_HEX_ID = re.compile(r"[0-9a-f]{32,64}")
_TOKEN = re.compile(r"[\w.:/@+\-]{1,200}")
_MUNICIPALITY = re.compile(r"\d{6}")
_DIGIT_RUN = re.compile(r"(?<!\d)(\d{11}|\d{12})(?!\d)")
_ALL_DIGITS = re.compile(r"\d{1,15}")
_TEXT_LIMIT = 1000
_PERSONAL_NUMBER_WEIGHTS = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_RESIDENT_CODE_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def screen(event: AuditEvent) -> AuditEvent:
    """`event` as the trail may keep it: raises PersonalDataInAudit naming the field when an
    identifier may be personal data; masks 個人番号/住民票コード-like numbers in free text."""
    if event.subject is not None and not _PSEUDONYM.fullmatch(event.subject):
        _fail(event, "subject", "is not a pseudonym (32 hex characters from Pseudonymizer.subject)")
    if event.municipality is not None and not _MUNICIPALITY.fullmatch(event.municipality):
        _fail(event, "municipality", "is not a 6-digit 地方公共団体コード")
    message_id = event.message_id
    if message_id is not None and not (len(message_id) >= 32 and _HEX_ID.fullmatch(message_id)):
        _check_token(event, "message_id", message_id)
    joined = _is_joined(event)
    for name in ("kind", "source", "destination", "route", "projection", "actor"):
        value = getattr(event, name)
        if value is not None and value not in _PASSED:
            if joined and name in _JOINED:  # one routed record of a change (bus.audit.fanout): each part
                for part in value.split(_SEP):
                    if part not in _PASSED:
                        _check_token(event, name, part)
                        _remember(part)
            else:
                _check_token(event, name, value)
                _remember(value)
    for i, code in enumerate(event.codes):
        _check_token(event, f"codes[{i}]", code)
    masked: dict[str, Any] = {}
    for name in ("reason", "receipt", "legal_basis"):
        value = getattr(event, name)
        if value is None or value in _CLEAN:
            continue
        if joined and name == "legal_basis":
            value = _joined_text(value)
        else:
            value = _text(value)
        if value != getattr(event, name):
            masked[name] = value
        else:
            _remember_clean(value)
    return replace(event, **masked) if masked else event


#: the fields a joined `routed` record holds one value per destination in, a space apart
_JOINED = frozenset({"kind", "destination", "route", "projection"})
_SEP = " "


def _is_joined(event: AuditEvent) -> bool:
    """A `routed` record of several destinations whose fields agree on how many (else each
    field is screened as one identifier, and one with a space is refused)."""
    destination = event.destination
    if event.event != EventType.ROUTED or destination is None or _SEP not in destination:
        return False
    count = destination.count(_SEP)
    return all(value is not None and value.count(_SEP) == count
               for value in (event.route, event.projection, event.kind))


def _text(value: str) -> str:
    """Free text as the trail keeps it: at most _TEXT_LIMIT characters, personal numbers masked."""
    if len(value) > _TEXT_LIMIT:
        value = value[:_TEXT_LIMIT] + "…"
    if _personal_number(value):
        value = _DIGIT_RUN.sub(lambda m: mask_value(m.group(0)) if _personal_number(m.group(0)) else m.group(0),
                               value)
    return value


def _joined_text(value: str) -> str:
    """A joined record's legal bases (a JSON list, one per destination): each screened as free
    text, so the list still reads back (fanout.split); anything else is screened as one text."""
    try:
        parts = json.loads(value)
    except ValueError:
        return _text(value)
    if not isinstance(parts, list) or not all(p is None or isinstance(p, str) for p in parts):
        return _text(value)
    screened = [p if p is None else _text(p) for p in parts]
    return value if screened == parts else json.dumps(screened, ensure_ascii=False)


def claimed(name: str, value: str | None) -> str | None:
    """`value` when the trail may keep it as the identifier `name`, else None: for what a source
    claims (a kind, a source name) and the bus refuses — a kind with a space or CR/LF, or a
    number, must not stop the rejection from being recorded."""
    if value is None:
        return None
    try:
        _check_token(AuditEvent(EventType.REJECTED), name, value)
    except PersonalDataInAudit:
        return None
    return value


#: identifier values that passed `_check_token` (kinds, sources, destinations, routes, actors
#: recur on every event; a message id or a code is checked each time): bounded, cleared when full
_PASSED: set[str] = set()
_PASSED_LIMIT = 4096


def _remember(value: str) -> None:
    if len(_PASSED) >= _PASSED_LIMIT:
        _PASSED.clear()
    _PASSED.add(value)


#: free-text values that needed no masking nor shortening: a route's legal basis is on every
#: routed and delivered event (~10 per change), and scanning its ~150 characters for digit runs
#: each time was most of `screen`'s cost. Bounded like _PASSED; only short values are kept.
_CLEAN: set[str] = set()
_CLEAN_LIMIT = 1024


def _remember_clean(value: str) -> None:
    if len(value) > _TEXT_LIMIT:
        return
    if len(_CLEAN) >= _CLEAN_LIMIT:
        _CLEAN.clear()
    _CLEAN.add(value)


def _check_token(event: AuditEvent, name: str, value: str) -> None:
    if not _TOKEN.fullmatch(value):
        _fail(event, name, "is not an identifier (letters, digits and . : / @ + - _ only, at most 200)")
    if _ALL_DIGITS.fullmatch(value) and not name.startswith("codes"):
        _fail(event, name, "is all digits and may be a raw 宛名番号")
    what = _personal_number(value)
    if what:
        _fail(event, name, f"holds {what}")


def _personal_number(text: str) -> str | None:
    """What kind of personal number `text` holds, if any."""
    for run in _DIGIT_RUN.findall(text):
        if len(run) == 12 and _check_digit(run, _PERSONAL_NUMBER_WEIGHTS):
            return "a 12-digit number that is a valid 個人番号"
        if len(run) == 11 and _check_digit(run, _RESIDENT_CODE_WEIGHTS):
            return "an 11-digit number that is a valid 住民票コード"
    return None


def _check_digit(digits: str, weights: tuple[int, ...]) -> bool:
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11
    return int(digits[-1]) == (0 if remainder <= 1 else 11 - remainder)


def _fail(event: AuditEvent, field: str, what: str) -> None:
    where = f"message {event.message_id}" if event.message_id and field != "message_id" else "an event"
    raise PersonalDataInAudit(
        f"audit {event.event.value} event of {where}: field {field!r} {what}; the trail never holds "
        "personal data (pass Envelope.subject, never the 宛名番号, 個人番号 or name)"
    )
