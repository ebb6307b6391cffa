"""Check digits of the public numbers of the resident registry (DESIGN §2).

- 個人番号 (personal number, My Number): 12 digits, the last a check digit. Weights
  (6,5,4,3,2,7,6,5,4,3,2) over the first 11 digits left to right; r = Σ mod 11;
  check = 0 if r ≤ 1 else 11 − r.
- 地方公共団体コード (municipality code): 6 digits. s = 6d1+5d2+4d3+3d4+2d5;
  check = (11 − s mod 11) mod 10.
- 住民票コード (resident registry code): 11 digits. Weights (5,4,3,2,7,6,5,4,3,2) over the
  first 10 digits; check = 0 if r ≤ 1 else 11 − r.

- 宛名番号 / 世帯番号 (address and household numbers, 住民記録 standard 1.1.13): a serial
  number whose last digit is a check digit, modulus 11 with weights 2–7 (M11W2～7) from the
  rightmost data digit; a remainder of 0 gives 0. The standard does not say what a remainder
  of 1 (check "10") gives: `address_number_check_digit` returns None and renkei's synthetic
  registry skips such numbers. The rule applies to newly assigned numbers only, so the
  validator does not enforce it (older numbers stay as they were assigned).

Pure functions: `*_check_digit(prefix)` computes the digit for a prefix of the right length
(ValueError otherwise); `is_valid_*(text)` is False for anything that is not exactly the
right number of ASCII digits with a correct last digit. Nothing here raises on bad input.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

__all__ = [
    "address_number_check_digit",
    "is_valid_address_number",
    "is_valid_municipality_code",
    "is_valid_personal_number",
    "is_valid_resident_code",
    "municipality_code_check_digit",
    "personal_number_check_digit",
    "resident_code_check_digit",
]

_PERSONAL_WEIGHTS = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_MUNICIPALITY_WEIGHTS = (6, 5, 4, 3, 2)
_RESIDENT_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _weighted_sum(digits: str, weights: tuple[int, ...]) -> int:
    if len(digits) != len(weights) or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"expected {len(weights)} ASCII digits")
    # ASCII digit bytes are 48..57: Σ (b − 48)·w = Σ b·w − 48·Σ w
    total: int = sum(map(operator.mul, digits.encode("ascii"), weights))
    return total - 48 * sum(weights)


def _mod11(digits: str, weights: tuple[int, ...]) -> int:
    r = _weighted_sum(digits, weights) % 11
    return 0 if r <= 1 else 11 - r


def personal_number_check_digit(first11: str) -> int:
    """The check digit of a 個人番号 whose first 11 digits are `first11`."""
    return _mod11(first11, _PERSONAL_WEIGHTS)


def municipality_code_check_digit(first5: str) -> int:
    """The check digit of a 地方公共団体コード whose first 5 digits are `first5`."""
    return (11 - _weighted_sum(first5, _MUNICIPALITY_WEIGHTS) % 11) % 10


def resident_code_check_digit(first10: str) -> int:
    """The check digit of a 住民票コード whose first 10 digits are `first10`."""
    return _mod11(first10, _RESIDENT_WEIGHTS)


def _valid(text: object, length: int, digit: Callable[[str], int]) -> bool:
    if not isinstance(text, str) or len(text) != length or not (text.isascii() and text.isdigit()):
        return False
    return digit(text[:-1]) == int(text[-1])


def is_valid_personal_number(text: object) -> bool:
    """True for a 12-digit 個人番号 with a correct check digit (e.g. ``"123456789018"``)."""
    return _valid(text, 12, personal_number_check_digit)


def is_valid_municipality_code(text: object) -> bool:
    """True for a 6-digit 地方公共団体コード with a correct check digit (e.g. ``"131016"``)."""
    return _valid(text, 6, municipality_code_check_digit)


def is_valid_resident_code(text: object) -> bool:
    """True for an 11-digit 住民票コード with a correct check digit."""
    return _valid(text, 11, resident_code_check_digit)


def address_number_check_digit(prefix: str) -> int | None:
    """The M11W2～7 check digit of a 宛名番号 / 世帯番号 whose leading digits are `prefix`
    (1 to 14 ASCII digits); None when the remainder is 1 (the standard gives no digit)."""
    if not 1 <= len(prefix) <= 14 or not (prefix.isascii() and prefix.isdigit()):
        raise ValueError("expected 1 to 14 ASCII digits")
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(prefix)))
    r = total % 11
    if r == 0:
        return 0
    return None if r == 1 else 11 - r


def is_valid_address_number(text: object) -> bool:
    """True for a 宛名番号 / 世帯番号 (2 to 15 digits) whose last digit is its M11W2～7 check digit."""
    if not isinstance(text, str) or not 2 <= len(text) <= 15 or not (text.isascii() and text.isdigit()):
        return False
    return address_number_check_digit(text[:-1]) == int(text[-1])
