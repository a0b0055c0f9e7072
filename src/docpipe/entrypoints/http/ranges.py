"""The ``Range`` request header for byte ranges (RFC 9110 §14).

docpipe serves at most one range. Whatever :func:`parse_range` cannot or will not honour it answers
with ``None``, and the caller serves the whole representation with 200: RFC 9110 §14.2 lets a server
ignore ``Range`` and requires it for an unknown unit or an invalid ranges-specifier.

What counts as malformed (→ ``None``):

* a unit other than ``bytes`` (compared case-insensitively, §14.1), or no ``=``;
* a range-spec that is not ``first-last``, ``first-`` or ``-suffix`` made of ASCII digits only: no
  signs, no inner whitespace, no other characters;
* ``last < first`` (§14.1.1 calls such an int-range invalid);
* a number longer than 19 digits (the length of the largest signed 64-bit integer). No real
  representation is that large, and capping the length keeps ``int()`` cheap on hostile input;
* more than one range-spec. Serving several as ``multipart/byteranges`` is optional (§14.6), and
  ignoring the header is the behaviour the RFC allows.

Optional whitespace (SP / HTAB) is accepted around ``=`` and around each list element, and empty
list elements (``bytes=0-9,``) are skipped, as §5.6.1 asks of list recipients.
"""

from __future__ import annotations

import re

from docpipe.domain.errors import RangeNotSatisfiable
from docpipe.domain.model import ByteRange

MAX_DIGITS = 19
_OWS = " \t"
_INT_RANGE = re.compile(rf"([0-9]{{1,{MAX_DIGITS}}})-([0-9]{{0,{MAX_DIGITS}}})")
_SUFFIX_RANGE = re.compile(rf"-([0-9]{{1,{MAX_DIGITS}}})")


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range ``header`` asks for within a representation of ``size`` bytes.

    Returns ``None`` when there is no header or it is to be ignored (see the module docstring).
    An end past the last byte is clamped to ``size - 1`` and a suffix longer than the
    representation selects all of it (§14.1.2). Raises :class:`RangeNotSatisfiable` when the
    range is well-formed but selects no byte: ``first >= size``, a zero-length suffix
    (``bytes=-0``) or an empty representation (§14.1.1, answered with 416 per §15.5.17).
    """
    if header is None:
        return None
    unit, equals, range_set = header.partition("=")
    if not equals or unit.strip(_OWS).lower() != "bytes":
        return None
    specs = [spec for spec in (item.strip(_OWS) for item in range_set.split(",")) if spec]
    if len(specs) != 1:
        return None
    spec = specs[0]

    if suffix := _SUFFIX_RANGE.fullmatch(spec):
        length = int(suffix.group(1))
        if length == 0 or size <= 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(size - length, 0), size - 1)

    if int_range := _INT_RANGE.fullmatch(spec):
        first = int(int_range.group(1))
        last = int(int_range.group(2)) if int_range.group(2) else None
        if last is not None and last < first:
            return None
        if first >= size:
            raise RangeNotSatisfiable(size)
        return ByteRange(first, size - 1 if last is None else min(last, size - 1))

    return None


def content_range(byte_range: ByteRange, size: int) -> str:
    """The ``Content-Range`` of a 206 response: ``bytes first-last/size`` (RFC 9110 §14.4)."""
    return f"bytes {byte_range.start}-{byte_range.end}/{size}"


def unsatisfied_range(size: int) -> str:
    """The ``Content-Range`` of a 416 response: ``bytes */size`` (RFC 9110 §14.4, §15.5.17)."""
    return f"bytes */{size}"
