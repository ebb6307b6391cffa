"""The character gate (文字の検査): every string of a record, after the schema (DESIGN §2, §3).

Names use 行政事務標準文字 (MJ characters). What must not pass silently:

- R440 private-use code points (U+E000–U+F8FF, planes 15 and 16): vendor 外字. The message
  must go to 文字同定 (character identification) and come back with standard characters.
  Exception: a code point the catalog lists in a *registered character set*
  (schemas/charsets/: the 行政事務標準文字 additions, MJ+, carried in a private-use range until
  Unicode encodes them) is accepted and carried unchanged.
- R441 text not in Unicode NFC (e.g. カ + combining ゙ instead of ガ): receivers compare and
  index names; two spellings of one name are two names. CJK compatibility ideographs
  (U+F900–U+FAFF, U+2F800–U+2FA1F: 塚 U+FA10, 神 U+FA19, the JIS X 0213 and CP932 ones) and
  ideographic variation sequences (IVS) are *not* normalisation problems: they are the legal
  glyph the registry records (NFC would turn 塚 U+FA10 into 塚 U+585A), so they pass unchanged.
- R442 suspected mojibake (文字化け) or wrong character class:
  U+FFFD (a decoder already gave up); C1 controls U+0080–U+009F (Shift_JIS/CP932 bytes read
  as Latin-1); a Latin-1/CP1252 lead + continuation pair such as ``ã\\x81`` or ``Ã©`` (UTF-8
  read as Latin-1/CP1252); two or more of 縺 繧 繝 (UTF-8 かな read as CP932); and in kana
  fields (``*_kana``) anything but full-width katakana — half-width katakana (ｶﾀｶﾅ) above all.
- R207 C0 control characters other than tab, line feed and carriage return (NUL above all).

Values in issues are masked when the field is personal (bus.masking). Plain ASCII strings cost
one regex scan; only strings with a suspect character are looked at closely.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from typing import Any

from bus.catalog.charsets import CharacterSets, default_charsets
from bus.masking import is_personal, mask_value
from bus.validation.issues import Issue

__all__ = ["Personal", "check_characters", "check_string", "text_is_clean"]

# One scan finds every string worth a closer look.
_SUSPECT = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00c2-\u00ef\ufffd\ue000-\uf8ff\U000f0000-\U0010ffff縺繧繝]"
)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PRIVATE_USE = re.compile("[\ue000-\uf8ff\U000f0000-\U0010ffff]")
# CJK compatibility ideographs: NFC maps most to their unified ideograph, which changes the
# legal glyph; for the NFC test each counts as a plain ideograph (they compose with nothing).
_COMPAT_IDEOGRAPH = re.compile("[\uf900-\ufaff\U0002f800-\U0002fa1f]")
_C1 = re.compile("[\x80-\x9f]")
# UTF-8 lead byte read as Latin-1/CP1252, followed by a continuation byte read the same way.
_LATIN1_UTF8 = re.compile(
    "[\u00c2-\u00ef][\u00a0-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
    "\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)
_CP932_UTF8 = re.compile("[縺繧繝]")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f]")
_HALFWIDTH_KANA = re.compile("[\uff61-\uff9f]")
# Full-width katakana, prolonged sound mark, middle dot, ideographic space, (semi-)voiced marks.
_KANA_CHARS = "\u30a1-\u30fa\u30fc\u30fb\u3000\u3099\u309a\u30fd\u30fe"
_KANA = re.compile(f"[{_KANA_CHARS}]+")
_NOT_KANA = re.compile(f"[^{_KANA_CHARS}\n]")


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def _codepoints(chars: Iterator[str], limit: int = 3) -> str:
    seen: list[str] = []
    for ch in chars:
        text = f"U+{ord(ch):04X}"
        if text not in seen:
            seen.append(text)
        if len(seen) >= limit:
            break
    return ", ".join(seen)


Personal = Callable[[str], bool]


def _is_nfc(value: str) -> bool:
    """NFC, counting compatibility ideographs as the glyphs they are (see the module doc)."""
    if unicodedata.is_normalized("NFC", value):
        return True
    return unicodedata.is_normalized("NFC", _COMPAT_IDEOGRAPH.sub("\u4e00", value))


def check_string(path: str, value: str, personal: Personal = is_personal,
                 charsets: CharacterSets | None = None) -> list[Issue]:
    """Every character-gate issue of one string at `path` (``/Root/name/family_name``);
    `personal(path)` says whether the value must be masked; `charsets` (default: the
    catalog's) says which private-use code points a registered character set accepts."""
    leaf = path.rsplit("/", 1)[-1].split("[", 1)[0]
    is_kana = leaf.endswith("_kana")
    suspect = _SUSPECT.search(value) is not None
    not_nfc = not value.isascii() and not _is_nfc(value)
    bad_kana = is_kana and _KANA.fullmatch(value) is None
    if not (suspect or not_nfc or bad_kana):
        return []
    shown = mask_value(value) if personal(path) else _UNPRINTABLE.sub(_escape, value)
    issues: list[Issue] = []

    def add(code: str, message: str, expected: str) -> None:
        issues.append(Issue(code, message, path=path, value=shown, expected=expected))

    if suspect:
        if _CONTROL.search(value):
            add("R207", f"control character {_codepoints(m.group() for m in _CONTROL.finditer(value))}",
                "text without control characters")
        if _PRIVATE_USE.search(value):
            sets = charsets if charsets is not None else default_charsets()
            unregistered = [m.group() for m in _PRIVATE_USE.finditer(value)
                            if sets.registered_name(ord(m.group())) is None]
            if unregistered:
                cps = _codepoints(iter(unregistered))
                add("R440", f"private-use character {cps} (外字) is in no registered character set: "
                    "needs 文字同定 before it can be sent",
                    "standard characters (行政事務標準文字 / MJ, or an MJ+ code point the catalog registers)")
        if "\ufffd" in value:
            add("R442", "replacement character U+FFFD: the text was already garbled (文字化け)",
                "the original characters")
        if _C1.search(value):
            cps = _codepoints(m.group() for m in _C1.finditer(value))
            add("R442", f"C1 control character {cps}: bytes decoded with the wrong encoding (文字化け), "
                "e.g. Shift_JIS/CP932 or UTF-8 read as Latin-1", "UTF-8 text")
        elif _LATIN1_UTF8.search(value):
            add("R442", "looks like UTF-8 read as Latin-1/CP1252 (文字化け), e.g. 'ã' + continuation",
                "UTF-8 text decoded as UTF-8")
        if len(_CP932_UTF8.findall(value)) >= 2:
            add("R442", "looks like UTF-8 read as CP932 (文字化け: 縺/繧/繝)", "UTF-8 text decoded as UTF-8")
    if not_nfc:
        add("R441", "text is not in Unicode NFC (e.g. a combining voiced mark instead of a composed kana)",
            "NFC-normalised text")
    if bad_kana:
        if _HALFWIDTH_KANA.search(value):
            add("R442", "half-width katakana in a kana field", "full-width katakana (全角カタカナ)")
        else:
            add("R442", "a kana field holds characters other than full-width katakana",
                "full-width katakana (全角カタカナ)")
    return issues


def _walk(value: Any, path: str, out: list[Issue], personal: Personal,
          charsets: CharacterSets | None = None) -> None:
    if isinstance(value, str):
        if value:
            found = check_string(path, value, personal, charsets)
            if found:
                out.extend(found)
    elif isinstance(value, Mapping):
        for key, child in value.items():
            if isinstance(child, (str, Mapping, list, tuple)):
                _walk(child, f"{path}/{key}", out, personal, charsets)
    elif isinstance(value, (list, tuple)):
        for i, child in enumerate(value):
            _walk(child, f"{path}[{i}]", out, personal, charsets)


_SCALARS = frozenset({type(None), bool, int, float, date, datetime})


def _collect(value: Mapping[str, Any], texts: list[str], kana: list[str]) -> None:
    for key, child in value.items():
        cls = child.__class__
        if cls is str:
            (kana if key.endswith("_kana") else texts).append(child)
        elif cls in _SCALARS:
            continue
        elif cls is dict or isinstance(child, Mapping):
            _collect(child, texts, kana)
        elif cls is list or cls is tuple:
            for item in child:
                if isinstance(item, Mapping):
                    _collect(item, texts, kana)
                elif isinstance(item, str):
                    texts.append(item)


def text_is_clean(text: str) -> bool:
    """True when no string inside `text` can hold an R440/R441/R442/R207 problem (kana-field
    rules aside). A screen for whole documents: markup is ASCII and never composes with text."""
    if _SUSPECT.search(text) is not None:
        return False
    return text.isascii() or _is_nfc(text)


def _clean(record: Mapping[str, Any]) -> bool:
    """The fast screen: one scan over all strings joined; True when nothing can be wrong."""
    texts: list[str] = []
    kana: list[str] = []
    _collect(record, texts, kana)
    texts.extend(kana)
    if not text_is_clean("\n".join(texts)):
        return False
    return _NOT_KANA.search("\n".join(kana)) is None and all(kana)


def check_characters(record: Mapping[str, Any], *, root: str = "", personal: Personal = is_personal,
                     charsets: CharacterSets | None = None) -> list[Issue]:
    """Character-gate issues of every string in `record`; paths start with ``/<root>``.

    `personal(path)` decides masking (default: bus.masking.is_personal; the validator passes
    the kind's own, which also knows the fields its spec marks personal); `charsets` says
    which private-use code points are registered (default: the shipped catalog's)."""
    if _clean(record):
        return []
    out: list[Issue] = []
    _walk(record, f"/{root}" if root else "", out, personal, charsets)
    return out
