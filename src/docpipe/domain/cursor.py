"""Opaque list cursors: clients hand back what they were given and learn nothing from its shape."""

from __future__ import annotations

import base64
import binascii

import msgspec

from docpipe.domain.errors import InvalidCursor
from docpipe.domain.model import is_document_id


class _CursorBody(msgspec.Struct, frozen=True):
    after: str


def encode_cursor(after_id: str) -> str:
    """A URL-safe token that resumes a listing after the document ``after_id``."""
    raw = msgspec.json.encode(_CursorBody(after=after_id))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(token: str) -> str:
    """The id a token resumes after; raises ``InvalidCursor`` for anything ``encode_cursor`` did not make."""
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
        body = msgspec.json.decode(raw, type=_CursorBody)
    except (UnicodeEncodeError, binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidCursor from None
    if not is_document_id(body.after) or encode_cursor(body.after) != token:
        raise InvalidCursor
    return body.after
