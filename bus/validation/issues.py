"""One validation problem, in words for the person who must fix it.

Codes are stable (documented in docs/error-codes.md); tests and vendors rely on them:

    R1xx  size          R100 too large
    R2xx  safe parse    R200 not well-formed, R201 DOCTYPE/DTD, R202 entity, R203 processing
                        instruction, R204 XInclude, R205 too deep, R206 text node too large,
                        R207 encoding (BOM mismatch, NUL, not UTF-8), R208 schemaLocation hint,
                        R210 Avro truncated, R211 Avro length out of bounds, R212 Avro unreadable
                        R220 unknown kind / content type, R230 not a regular file (inbox)
    R3xx  schema        R300 XSD violation, R301 Avro does not match schema
    R4xx  rules         R401 check digit (個人番号), R402 check digit (地方公共団体コード),
                        R403 check digit (住民票コード), R410 date order, R420 code list,
                        R430 cross-field rule, R440 private-use character (外字),
                        R441 not NFC, R442 suspected mojibake, R450 envelope mismatch
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Issue"]


@dataclass(frozen=True, slots=True)
class Issue:
    """A single validation problem.

    `value` is already masked when the field is personal (see bus.masking.mask_value);
    nothing in an Issue may hold personal data in plain text.
    """

    code: str
    message: str
    path: str = ""
    line: int | None = None
    column: int | None = None
    value: str | None = None
    expected: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        where = self.path or "/"
        if self.line is not None:
            where += f" (line {self.line}" + (f", column {self.column})" if self.column is not None else ")")
        text = f"{self.code} {where}: {self.message}"
        if self.value is not None:
            text += f" [value: {self.value}]"
        if self.expected:
            text += f" [expected: {self.expected}]"
        return text
