"""Media types (RFC 9110 §8.3.1), parsed strictly: exactly one type, or ``InvalidInput``.

A declared ``Content-Type`` is stored and served again, and decides whether a download may be shown
inline, so it must mean one thing to docpipe and to every browser. Lenient parsers disagree: for
``text/plain; a=b, text/html`` a browser takes the last comma-separated type (Fetch's "extract a MIME
type"), while a split on ``;`` sees ``text/plain``. So only the RFC grammar is accepted, in ASCII (no
header can carry anything else), with no comma outside a quoted string, and only one canonical
spelling is ever stored.
"""

from __future__ import annotations

import re

import msgspec

from docpipe.domain.errors import InvalidInput
from docpipe.domain.fields import MAX_CONTENT_TYPE_LENGTH

# An RFC 9110 §5.6.2 token: one or more tchar.
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# quoted-string without obs-text: tab, space and visible ASCII; a backslash escapes the next one.
_QUOTED_STRING = r'"(?:[\t !#-\[\]-~]|\\[\t -~])*"'
# Each stretch of whitespace has one place in the pattern (none is followed by another that could take
# it), so a failing match cannot backtrack exponentially.
_PARAMETER = rf";[ \t]*(?:({_TCHARS})=({_TCHARS}|{_QUOTED_STRING})[ \t]*)?"
_MEDIA_TYPE = re.compile(rf"({_TCHARS})/({_TCHARS})[ \t]*((?:{_PARAMETER})*)")
_PARAMETERS = re.compile(_PARAMETER)
_TOKEN = re.compile(_TCHARS)
_QUOTED_PAIR = re.compile(r"\\(.)")
_NEEDS_ESCAPE = re.compile(r'(["\\])')

# Types that say nothing about the bytes: curl sends the second for --data-binary.
UNDECLARED_TYPES = frozenset({"application/octet-stream", "application/x-www-form-urlencoded"})


class MediaType(msgspec.Struct, frozen=True):
    """A parsed media type: lower-case type, subtype and parameter names, values as sent."""

    type: str
    subtype: str
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def essence(self) -> str:
        """``type/subtype`` without parameters."""
        return f"{self.type}/{self.subtype}"

    def __str__(self) -> str:
        """The canonical spelling: ``type/subtype; name=value``, a value quoted only when it must be."""
        return "".join([self.essence, *(f"; {name}={_serialise(value)}" for name, value in self.parameters)])


def parse_media_type(value: str) -> MediaType:
    """Exactly one media type, or ``InvalidInput`` saying why not.

    Empty parameters (``text/plain;``) are dropped; a parameter named twice, media ranges (``*``)
    and anything longer than ``MAX_CONTENT_TYPE_LENGTH`` (as sent or as normalised) are refused.
    """
    if len(value) > MAX_CONTENT_TYPE_LENGTH:
        raise InvalidInput(f"content type is longer than {MAX_CONTENT_TYPE_LENGTH} characters")
    match = _MEDIA_TYPE.fullmatch(value.strip(" \t"))
    if match is None:
        raise InvalidInput(
            f"content type {value!r} is not one media type (type/subtype, then ;-separated parameters "
            "whose values are tokens or quoted strings, in ASCII)"
        )
    kind, subtype, parameter_text = match.group(1, 2, 3)
    if "*" in (kind, subtype):
        raise InvalidInput(f"content type {value!r} is a media range, not a media type")
    parameters: dict[str, str] = {}
    for written_name, raw in _PARAMETERS.findall(parameter_text):
        if not written_name:
            continue
        name = written_name.lower()
        if name in parameters:
            raise InvalidInput(f"content type {value!r} gives parameter {name!r} more than once")
        parameters[name] = _QUOTED_PAIR.sub(r"\1", raw[1:-1]) if raw.startswith('"') else raw
    media_type = MediaType(kind.lower(), subtype.lower(), tuple(parameters.items()))
    if len(str(media_type)) > MAX_CONTENT_TYPE_LENGTH:
        raise InvalidInput(
            f"content type is longer than {MAX_CONTENT_TYPE_LENGTH} characters once normalised"
        )
    return media_type


def is_token(value: str) -> bool:
    """Whether ``value`` is an RFC 9110 §5.6.2 token, as a type, a parameter name or a disposition is."""
    return _TOKEN.fullmatch(value) is not None


def clean_content_type(declared: str | None) -> str | None:
    """The declared type, normalised; ``None`` when it says nothing about the bytes (detect them).

    Raises ``InvalidInput`` when a type is declared that is not exactly one media type.
    """
    if declared is None or not declared.strip(" \t"):
        return None
    media_type = parse_media_type(declared)
    if media_type.essence in UNDECLARED_TYPES:
        return None
    return str(media_type)


def _serialise(value: str) -> str:
    if is_token(value):
        return value
    return '"' + _NEEDS_ESCAPE.sub(r"\\\1", value) + '"'
