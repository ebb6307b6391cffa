"""Safe schemaless Avro decoding with bounded lengths (DESIGN §3 step 2, §8).

A schemaless Avro body carries no schema of its own: the kind's schema reads it. Broken or
hostile bodies are classified with stable codes:

- R100 larger than the size cap (checked first);
- R210 truncated: a length or value runs past the end of the body;
- R211 length out of bounds: a length prefix that is negative or larger than the size cap
  (no valid body can hold it: the hostile "huge length prefix");
- R212 unreadable: bytes left over after the record (written under another schema), a bad
  union or enum index, a malformed number;
- R207 a string that is not valid UTF-8.

The happy path is one fastavro call on an in-memory buffer. fastavro reads from that buffer
with ``read(n)``, which never allocates more than what is left of the body, so a huge length
prefix cannot make it allocate a huge buffer; only when decoding fails is the body read again
through a bounded reader that sees every requested length, to say what was wrong.
(Arrays or maps of zero-width items — null, empty records — could still loop on a huge block
count; no renkei schema has them.)
"""

from __future__ import annotations

import io
import re
from typing import IO, Any, cast

import fastavro

from bus.errors import ValidationFailed
from bus.validation.issues import Issue
from bus.validation.safe_xml import DEFAULT_MAX_SIZE, check_size

__all__ = ["decode_avro"]

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


class _OutOfBounds(Exception):
    def __init__(self, requested: int, offset: int) -> None:
        super().__init__(requested, offset)
        self.requested = requested
        self.offset = offset


class _Truncated(_OutOfBounds):
    pass


class _BoundedReader:
    """A file-like view of the body that refuses impossible lengths instead of reading them."""

    def __init__(self, raw: bytes, limit: int) -> None:
        self._raw = raw
        self._pos = 0
        self._limit = limit

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._limit:
            raise _OutOfBounds(n, self._pos)
        if n > len(self._raw) - self._pos:
            raise _Truncated(n, self._pos)
        chunk = self._raw[self._pos : self._pos + n]
        self._pos += n
        return chunk


def _fail(code: str, message: str, expected: str | None = None) -> ValidationFailed:
    return ValidationFailed([Issue(code, message, expected=expected)])


def _classify(raw: bytes, schema: Any, max_size: int, first: Exception) -> ValidationFailed:
    try:
        fastavro.schemaless_reader(cast(IO[bytes], _BoundedReader(raw, max_size)), schema, None)
    except _Truncated as err:
        return _fail("R210", f"Avro body is truncated: {err.requested} bytes needed at byte {err.offset}, "
                     f"only {len(raw) - err.offset} left", expected="a complete Avro record")
    except _OutOfBounds as err:
        return _fail("R211", f"Avro length prefix {err.requested} at byte {err.offset} is out of bounds",
                     expected=f"a length between 0 and {max_size}")
    except UnicodeDecodeError:
        return _fail("R207", "an Avro string is not valid UTF-8", expected="UTF-8 strings")
    except Exception as err:  # any reader failure: an unreadable body
        first = err
    if isinstance(first, UnicodeDecodeError):
        return _fail("R207", "an Avro string is not valid UTF-8", expected="UTF-8 strings")
    detail = _QUOTED.sub("'…'", str(first))[:200]
    reason = type(first).__name__ + (f": {detail}" if detail else "")
    return _fail("R212", f"Avro body cannot be read with this kind's schema ({reason})",
                 expected="a body written with the kind's Avro schema")


def decode_avro(raw: bytes, schema: Any, *, max_size: int = DEFAULT_MAX_SIZE) -> dict[str, Any]:
    """Decode one schemaless Avro record of `schema` (a fastavro parsed schema).

    Raises bus.errors.ValidationFailed (R100, R207, R210, R211, R212).
    """
    check_size(raw, max_size)
    if not raw:
        raise _fail("R210", "Avro body is empty", expected="a complete Avro record")
    buf = io.BytesIO(raw)
    try:
        record = fastavro.schemaless_reader(buf, schema, None)
    except Exception as err:  # classified below, never a traceback
        raise _classify(raw, schema, max_size, err) from None
    left = len(raw) - buf.tell()
    if left:
        raise _fail("R212", f"{left} bytes left over after the record: written under another schema?",
                    expected="exactly one record of the kind's Avro schema")
    if not isinstance(record, dict):
        raise _fail("R212", "Avro body is not a record", expected="a record")
    return record
