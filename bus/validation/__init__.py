"""Validation of messages (DESIGN §3): size, safe parse, schema, rules, character gate.

    from bus.validation import validate, Limits
    validated = validate(raw, content_type="application/xml", catalog=catalog)

Every problem is an `Issue` with a stable code (docs/error-codes.md); a rejected message
raises `bus.errors.ValidationFailed(issues)`.
"""

from bus.validation.chargate import check_characters
from bus.validation.checkdigits import (
    is_valid_municipality_code,
    is_valid_personal_number,
    is_valid_resident_code,
    municipality_code_check_digit,
    personal_number_check_digit,
    resident_code_check_digit,
)
from bus.validation.issues import Issue
from bus.validation.rules import RuleSet, rules_for
from bus.validation.safe_avro import decode_avro
from bus.validation.safe_xml import parse_xml
from bus.validation.validator import AVRO, XML, Limits, Validated, validate

__all__ = [
    "AVRO",
    "XML",
    "Issue",
    "Limits",
    "RuleSet",
    "Validated",
    "check_characters",
    "decode_avro",
    "is_valid_municipality_code",
    "is_valid_personal_number",
    "is_valid_resident_code",
    "municipality_code_check_digit",
    "parse_xml",
    "personal_number_check_digit",
    "resident_code_check_digit",
    "rules_for",
    "validate",
]
