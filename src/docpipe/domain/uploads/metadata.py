"""tus ``Upload-Metadata``: comma-separated ``key base64(value)`` pairs, and what docpipe reads of them.

Keys are ``filename`` (or ``name``, as Uppy and tus-js-client examples send it), ``filetype`` (or
``content_type``) and ``tags`` (comma separated); other keys are accepted and ignored, as tusd does.
"""

from __future__ import annotations

import base64
import re

from docpipe.domain.errors import MalformedInput
from docpipe.domain.model import NewDocument

_KEY = re.compile(r"[!-+\--~]+")
"""Printable ASCII without spaces and commas (tus 1.0.0, Upload-Metadata)."""
_FILENAME_KEYS = ("filename", "name")
_CONTENT_TYPE_KEYS = ("filetype", "content_type")


def parse_upload_metadata(header: str | None) -> dict[str, str]:
    """The pairs of an ``Upload-Metadata`` header; a key without a value maps to ``""``.

    ``MalformedInput`` for a key that is empty, repeated or not printable ASCII, and for a value that
    is not base64 of UTF-8 text.
    """
    pairs: dict[str, str] = {}
    if header is None or not header.strip():
        return pairs
    for item in header.split(","):
        key, _, encoded = item.strip().partition(" ")
        encoded = encoded.strip()
        if not _KEY.fullmatch(key) or " " in encoded:
            raise MalformedInput(f"Upload-Metadata holds a malformed pair: {item.strip()[:64]!r}")
        if key in pairs:
            raise MalformedInput(f"Upload-Metadata repeats the key {key!r}")
        try:
            pairs[key] = base64.b64decode(encoded, validate=True).decode()
        except ValueError:  # not base64 (binascii.Error), characters past ASCII, or not UTF-8
            raise MalformedInput(f"Upload-Metadata {key!r} is not base64 of UTF-8 text") from None
    return pairs


def describe(pairs: dict[str, str], fallback_filename: str) -> NewDocument:
    """What the pairs say of the document to be, as the client said it (the service cleans it); an
    upload that names no file is called ``fallback_filename``."""
    filename = next((pairs[key] for key in _FILENAME_KEYS if pairs.get(key)), fallback_filename)
    content_type = next((pairs[key] for key in _CONTENT_TYPE_KEYS if pairs.get(key)), None)
    tags = [tag for tag in pairs.get("tags", "").split(",") if tag.strip()]
    return NewDocument(filename=filename, content_type=content_type, tags=tags)
