"""Check digits of 個人番号, 地方公共団体コード and 住民票コード (DESIGN §2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.validation.checkdigits import (
    is_valid_municipality_code,
    is_valid_personal_number,
    is_valid_resident_code,
    municipality_code_check_digit,
    personal_number_check_digit,
    resident_code_check_digit,
)

ASCII_DIGITS = "0123456789"
#: no example database in the work tree, no deadline on a busy CI machine
quiet = settings(database=None, deadline=None)


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=ASCII_DIGITS, min_size=n, max_size=n)


@pytest.mark.parametrize("number", ["123456789018", "621498320257"])
def test_design_examples_of_personal_numbers_are_valid(number: str) -> None:
    """The 個人番号 examples of DESIGN §2 pass."""
    assert is_valid_personal_number(number)


@pytest.mark.parametrize("code", ["131016", "011002", "271004", "141003"])
def test_design_examples_of_municipality_codes_are_valid(code: str) -> None:
    """千代田区, 札幌市, 大阪市 and 横浜市 pass."""
    assert is_valid_municipality_code(code)


def test_resident_code_check_digit_follows_the_design_weights() -> None:
    """住民票コード: weights 5,4,3,2,7,6,5,4,3,2; 0 when r ≤ 1, else 11 − r."""
    # 3·5+0·4+5·3+1·2+2·7+7·6+4·5+8·4+2·3+3·2 = 152; 152 mod 11 = 9 → 11 − 9 = 2
    assert resident_code_check_digit("3051274823") == 2
    assert is_valid_resident_code("30512748232")
    assert not is_valid_resident_code("30512748231")


def test_personal_number_check_digit_zero_when_remainder_is_at_most_one() -> None:
    """A remainder of 0 or 1 gives check digit 0."""
    assert personal_number_check_digit("00000000000") == 0
    # 1·2 = 2 → r = 2 → 9; 0…01 with weight 2 on the last digit
    assert personal_number_check_digit("00000000001") == 9


@pytest.mark.parametrize(
    "value",
    ["12345678901", "1234567890188", "12345678901a", "１２３４５６７８９０１８", "", None, 123456789018,
     " 123456789018"],
)
def test_anything_but_twelve_ascii_digits_is_not_a_personal_number(value: object) -> None:
    """Wrong length, letters, full-width digits and non-strings are invalid, never an exception."""
    assert not is_valid_personal_number(value)


@pytest.mark.parametrize("func", [personal_number_check_digit, municipality_code_check_digit,
                                  resident_code_check_digit])
def test_a_prefix_of_the_wrong_length_is_a_value_error(func: object) -> None:
    """Computing a check digit needs exactly the right number of digits."""
    with pytest.raises(ValueError):
        func("12")  # type: ignore[operator]


@quiet
@given(digits(11))
def test_exactly_one_check_digit_completes_each_personal_number_prefix(prefix: str) -> None:
    """For every 11-digit prefix exactly one of 0-9 makes a valid 個人番号, the computed one."""
    valid = [d for d in ASCII_DIGITS if is_valid_personal_number(prefix + d)]
    assert valid == [str(personal_number_check_digit(prefix))]


@quiet
@given(digits(5))
def test_exactly_one_check_digit_completes_each_municipality_code_prefix(prefix: str) -> None:
    """For every 5-digit prefix exactly one of 0-9 makes a valid 地方公共団体コード."""
    valid = [d for d in ASCII_DIGITS if is_valid_municipality_code(prefix + d)]
    assert valid == [str(municipality_code_check_digit(prefix))]


@quiet
@given(digits(10))
def test_exactly_one_check_digit_completes_each_resident_code_prefix(prefix: str) -> None:
    """For every 10-digit prefix exactly one of 0-9 makes a valid 住民票コード."""
    valid = [d for d in ASCII_DIGITS if is_valid_resident_code(prefix + d)]
    assert valid == [str(resident_code_check_digit(prefix))]


@quiet
@given(digits(11), st.integers(min_value=0, max_value=10), st.integers(min_value=1, max_value=9))
def test_changing_one_digit_of_a_personal_number_is_caught_unless_remainders_collide(
    prefix: str, position: int, delta: int
) -> None:
    """A single mistyped digit is caught, except when it moves the remainder between 0 and 1
    (both give check digit 0: a known property of the algorithm)."""
    number = prefix + str(personal_number_check_digit(prefix))
    changed_digit = (int(number[position]) + delta) % 10
    typo = number[:position] + str(changed_digit) + number[position + 1:]
    weights = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    r_before = sum(int(d) * w for d, w in zip(prefix, weights, strict=True)) % 11
    r_after = sum(int(d) * w for d, w in zip(typo[:11], weights, strict=True)) % 11
    if {r_before, r_after} != {0, 1}:
        assert not is_valid_personal_number(typo)


@quiet
@given(st.text(max_size=14))
def test_validators_never_raise(text: str) -> None:
    """Arbitrary text is simply invalid or valid; the validators never raise."""
    for check in (is_valid_personal_number, is_valid_municipality_code, is_valid_resident_code):
        assert check(text) in (True, False)
